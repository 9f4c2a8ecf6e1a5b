"""What every training run shares: its settings (:class:`TrainConfig` for ``mlwfcalc train``, the
:class:`OptimisationSettings` that the fine-tuning's config extends too), the learning-rate schedule, the
optimiser, the EMA weights and the batch order (a pure function of seed and step, so a resumed run
follows the uninterrupted one exactly).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..nn.model import ModelConfig
from ..validation import InputError


@dataclass
class OptimisationSettings:
    """What every training run of this package shares: split, batches, schedule, optimiser, EMA,
    validation interval, precision and device (TOML keys of :class:`TrainConfig` and of
    :class:`~mlwfcalc.training.transfer.TransferConfig`).

    Attributes:
        seed: split, initialisation and batch order.
        n_train, n_val: split sizes (counts, or fractions of the dataset); the split is seeded.
        batch_size: molecules per step (the global batch when several processes train).
        max_steps: total optimiser steps (the schedule spans them).
        max_minutes: stop (with a checkpoint) after this wall time; resume later to go on.
        lr, lr_min, warmup_steps: linear warm-up to ``lr``, then cosine decay to ``lr_min``.
        optimizer: ``"adamw"`` or ``"amsgrad"`` (AdamW with the AMSGrad variant); ``weight_decay``.
        ema_decay: exponential moving average of weights used for validation and export.
        clip_grad: gradient-norm clipping.
        val_every: validate, log and checkpoint every this many steps.
        dtype: ``"float32"`` or ``"float64"``; threads: torch CPU threads, at most the free cores (a
            thread on a busy core stalls the others: 30x slower measured, docs/benchmarks.md).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``; checkpoints are device-free, so a run
            may resume on another device.
    """

    seed: int = 0
    n_train: float = 0.9
    n_val: float = 0.1
    batch_size: int = 16
    max_steps: int = 20000
    max_minutes: float | None = None
    lr: float = 3e-3
    lr_min: float = 1e-5
    warmup_steps: int = 200
    optimizer: str = "amsgrad"
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    clip_grad: float = 10.0
    val_every: int = 250
    dtype: str = "float32"
    threads: int | None = None
    device: str = "cpu"

    def __post_init__(self):
        if self.optimizer not in ("adamw", "amsgrad"):
            raise InputError(f"optimizer {self.optimizer!r}: choose adamw or amsgrad")
        if self.dtype not in ("float32", "float64"):
            raise InputError(f"dtype {self.dtype!r}: choose float32 or float64")


@dataclass
class TrainConfig(OptimisationSettings):
    """Settings of a training run (a TOML file's keys; ``[model]`` holds :class:`ModelConfig` keys), the
    :class:`OptimisationSettings` and:

    Attributes:
        dataset: label database (``mlwfcalc label`` output).
        output: run directory.
        loss_unit: Hartree; loss = mean((e/unit)^2) + mean(|e/unit|) over all matrix elements e.
        orbital_loss_weight: adds ``weight * mean(|e_pred - e_ref| / loss_unit)`` over the occupied
            orbitals and the LUMO (eigenvalues of F with the exact overlap; finite at degeneracies).
        density_loss_weight: adds ``weight * mean(|dP| / loss_unit)`` over molecules, where ``|dP|`` is
            the Frobenius norm (orthonormal AO basis) of the first-order density error that the
            predicted F implies: its occupied-virtual block in the reference orbitals over the
            orbital-energy differences (see
            :meth:`~mlwfcalc.training.trainer.TrainingData.density_error`). It is what an SCF guess from F
            gets wrong, linear in F (no eigenvector derivatives).
        init_from: a model directory whose weights (and normalisation) start this run (fine-tuning).
        validation_molecules: a JSON list of SMILES whose frames are the validation split (a fine-tune on more
            labels keeps its starting model's ``val_molecules``); otherwise the seeded split of ``n_train, n_val``.
        normalise_outputs: fit per-element (pair) shifts and scales of the heads to the training set.
    """

    dataset: str = ""
    output: str = "run"
    model: ModelConfig = field(default_factory=ModelConfig)
    loss_unit: float = 1e-3
    orbital_loss_weight: float = 0.0
    density_loss_weight: float = 0.0
    init_from: str | None = None
    validation_molecules: str | None = None
    normalise_outputs: bool = True

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.model, dict):
            self.model = ModelConfig(**self.model)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d

    @staticmethod
    def read_toml(path: str | Path) -> dict:
        """The raw content of a TOML training config; InputError when it cannot be read."""
        try:
            import tomllib
        except ImportError:  # Python 3.10
            import tomli as tomllib
        try:
            return tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise InputError(f"cannot read training config {path} ({err})") from None

    @classmethod
    def from_toml(cls, path: str | Path, **overrides) -> "TrainConfig":
        data = cls.read_toml(path)
        data.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**data)
        except TypeError as err:
            raise InputError(f"{path}: {err}") from None


def learning_rate(config: OptimisationSettings, step: int) -> float:
    """Linear warm-up, then cosine decay from ``lr`` to ``lr_min`` at ``max_steps``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = min(1.0, (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps))
    return config.lr_min + 0.5 * (config.lr - config.lr_min) * (1 + math.cos(math.pi * progress))


def make_optimizer(parameters, config: OptimisationSettings) -> torch.optim.Optimizer:
    """AdamW (AMSGrad variant for ``optimizer = "amsgrad"``), fused: one kernel for all parameters."""
    return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay,
                             amsgrad=config.optimizer == "amsgrad", fused=True)


def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float, step: int) -> None:
    """Move ``ema``'s parameters towards ``model``'s; the decay ramps up from 0.1 to ``decay`` early on."""
    rate = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1 - rate)


def batch_indices(train_index: np.ndarray, batch_size: int, seed: int, step: int) -> np.ndarray:
    """The training indices of ``step``: each epoch a seeded permutation of ``train_index``, cut into
    batches. A pure function of seed and step, so a resumed run follows the uninterrupted one."""
    epoch, k = divmod(step, len(train_index) // batch_size)
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = train_index[torch.randperm(len(train_index), generator=generator).numpy()]
    return order[k * batch_size:(k + 1) * batch_size]
