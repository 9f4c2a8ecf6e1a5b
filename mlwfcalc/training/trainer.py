"""The trainer of a Kohn-Sham model (``mlwfcalc train``): the losses on F, the loop, validation, the export.

A run lives in one directory::

    run/checkpoint.safetensors  model, EMA and optimiser tensors (no pickle anywhere)
    run/checkpoint.json         step, best validation error, optimiser param groups, configs
    run/log.csv                 one row per validation
    run/learning_curve.png      training and validation MAE against step
    run/best/                   the best model so far (EMA weights): model.safetensors + config.json

A run killed at any moment resumes from its last checkpoint with the same optimiser state; the
batch order is a function of (seed, epoch) and the learning rate a function of the step, so a
resumed run follows the uninterrupted one exactly.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.dataset import LabelledDataset, read_molecule_names
from ..io import read_config, resolve_model_path, save_model
from ..model import MLWFModel
from ..nn.graph import Batch, make_batch, pad_matrices
from ..nn.model import HamiltonianModel
from ..predictor import baselines, resolve_device
from ..validation import InputError
from . import distributed
from .checkpoint import (CHECKPOINT_META, check_same_labels, check_same_validation, load_checkpoint, molecules_seen_by,
                         plot_learning_curve, read_checkpoint_meta, read_log, write_checkpoint, write_log)
from .optimisation import TrainConfig, batch_indices, learning_rate, make_optimizer, update_ema


class TrainingData:
    """The split dataset, with the per-sample references the losses need: the baselines (H_core or H0, when the
    model learns F - H_core or F - H0), and the overlap's inverse Cholesky factor with the reference orbital
    energies (orbital loss) and orbitals (density loss)."""

    def __init__(self, dataset: LabelledDataset, config: TrainConfig, layout, progress: bool = False):
        self.dataset = dataset
        self.config = config
        self.layout = layout
        if config.validation_molecules:
            self.train_index, self.val_index = dataset.split_by_molecules(
                read_molecule_names(config.validation_molecules), config.validation_molecules)
        else:
            self.train_index, self.val_index = dataset.split([config.n_train, config.n_val], config.seed)
        if len(self.train_index) < config.batch_size:
            raise InputError(f"{len(self.train_index)} training samples is fewer than batch_size {config.batch_size}")
        orbital_loss = config.orbital_loss_weight > 0
        density_loss = config.density_loss_weight > 0
        delta = config.model.target != "fock"
        self.orthogonaliser = [] if (orbital_loss or density_loss) else None
        self.reference_energies = [] if orbital_loss else None
        self.reference_orbitals = [] if density_loss else None
        self.baseline = [] if delta else None
        for s in tqdm(dataset.samples if (orbital_loss or density_loss or delta) else [], desc="references",
                      unit="frame", disable=not progress or not delta):  # one PySCF Mole per sample
            mol = layout.make_mole(s.numbers.tolist(), s.positions.numpy())
            if orbital_loss or density_loss:
                inverse = torch.linalg.inv(torch.linalg.cholesky(torch.as_tensor(mol.intor("int1e_ovlp"))))
                energies, vectors = torch.linalg.eigh(inverse @ s.fock @ inverse.T)
                n_occ = mol.nelectron // 2
                self.orthogonaliser.append(inverse)
            if orbital_loss:
                self.reference_energies.append(energies[:n_occ + 1])  # occupied orbitals and the LUMO
            if density_loss:
                inverse_gaps = 1.0 / (energies[None, n_occ:] - energies[:n_occ, None])  # (occupied, virtual)
                self.reference_orbitals.append((vectors[:, :n_occ], vectors[:, n_occ:], inverse_gaps))
            if delta:
                with torch.no_grad():
                    (baseline,) = baselines(config.model, [mol], [s.positions])
                self.baseline.append(baseline.detach())

    def batch(self, indices) -> tuple[Batch, torch.Tensor]:
        """``(Batch, target F (B, nmax, nmax))`` in float64."""
        samples = [self.dataset[int(i)] for i in indices]
        baseline = [self.baseline[int(i)] for i in indices] if self.baseline is not None else None
        batch = make_batch(self.layout, [s.numbers for s in samples], [s.positions for s in samples],
                           self.config.model.cutoff, baseline)
        return batch, pad_matrices([s.fock for s in samples])

    def orbital_energy_error(self, indices, fock: torch.Tensor) -> torch.Tensor:
        """``(sum over orbitals of |e_pred - e_ref|, count)`` for the occupied orbitals and LUMO of a batch."""
        total, count = fock.new_zeros(()), 0
        for k, i in enumerate(indices):
            inverse = self.orthogonaliser[int(i)].to(fock.device, fock.dtype)
            reference = self.reference_energies[int(i)]
            n = inverse.shape[0]
            energies = torch.linalg.eigvalsh(inverse @ fock[k, :n, :n] @ inverse.T)[:len(reference)]
            total = total + (energies - reference.to(fock.device, fock.dtype)).abs().sum()
            count += len(reference)
        return total, count

    def density_error(self, indices, fock: torch.Tensor) -> tuple[torch.Tensor, int]:
        """``(sum over molecules of |dP|, count)``: first-order density errors implied by predicted F.

        In the orthonormal basis ``X = L^-1`` (``S = L L^T``) with reference orbitals ``u`` and energies
        ``e``, the predicted ``F~ = X F X^T`` rotates occupied orbital i into virtual a by
        ``k_ia = (u_i^T F~ u_a) / (e_a - e_i)`` to first order (the reference block is zero), so the
        closed-shell density moves by ``dP = 2 sum_ia k_ia (u_i u_a^T + u_a u_i^T)`` and
        ``|dP|_F = sqrt(8 sum_ia k_ia^2)``. ``fock``: ``(B, nmax, nmax)`` predicted F, Hartree.
        """
        total = fock.new_zeros(())
        for k, i in enumerate(indices):
            inverse = self.orthogonaliser[int(i)].to(fock.device, fock.dtype)
            occupied, virtual, inverse_gaps = (t.to(fock.device, fock.dtype) for t in self.reference_orbitals[int(i)])
            n = inverse.shape[0]
            block = occupied.T @ (inverse @ fock[k, :n, :n] @ inverse.T) @ virtual
            total = total + (8 * (block * inverse_gaps).pow(2).sum() + 1e-30).sqrt()
        return total, len(indices)

    def step_indices(self, step: int) -> np.ndarray:
        """The training indices of ``step`` (:func:`batch_indices`)."""
        return batch_indices(self.train_index, self.config.batch_size, self.config.seed, step)


def matrix_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, unit: float,
                ctx: distributed.Context = distributed.Context()) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, MAE in Hartree)`` over the valid entries: mean((e/unit)^2) + mean(|e/unit|).

    Across processes (``ctx``) the means run over the entries of the whole global batch, scaled by the
    number of processes, so that DDP's gradient average is the gradient of the global loss; the MAE
    is this process's.
    """
    error = (pred - target)[mask]
    count = distributed.global_sum(error.numel(), ctx).to(error.dtype)
    mae = error.abs().mean()
    return ((error / unit).pow(2).sum() + error.abs().sum() / unit) * ctx.world / count, mae


class Trainer:
    """Runs (or resumes) one training run; see the module docstring for the files it writes."""

    def __init__(self, config: TrainConfig, progress: bool = True):
        self.config = config
        self.progress = progress
        self.output = Path(config.output)
        self.dtype = getattr(torch, config.dtype)
        if config.threads:
            torch.set_num_threads(config.threads)
        dataset = LabelledDataset(config.dataset)
        if (self.output / CHECKPOINT_META).exists():  # before the split: the labels must be the run's own
            check_same_labels(read_checkpoint_meta(self.output), dataset, self.output)
        self.settings = dataset.settings
        if dataset.settings.basis != config.model.basis.lower():
            raise InputError(f"dataset {config.dataset} is in basis {dataset.settings.basis}, the model config says "
                             f"{config.model.basis}; set model.basis = \"{dataset.settings.basis}\"")
        # the model covers at least every element of its training set
        config.model.elements = sorted(set(config.model.elements) | set(dataset.elements))
        if config.model.target == "fock-h0":  # H0 is the Kohn-Sham matrix of the labels' functional
            config.model.zeroth_step = {**config.model.zeroth_step, "xc": dataset.settings.xc}
        torch.manual_seed(config.seed)
        self.model = HamiltonianModel(config.model, dtype=self.dtype)
        self.data = TrainingData(dataset, config, self.model.layout, progress)
        self.ema = HamiltonianModel(config.model, dtype=self.dtype)  # weights copied from the model below
        self.device = resolve_device(config.device)
        if self.device.type == "cuda" and "LOCAL_RANK" in os.environ:  # one GPU per process
            self.device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        self.ctx = distributed.init_from_environment(self.device)
        self.progress = progress and self.ctx.main
        self.step = 0
        self.best_val = math.inf
        self.history: list[dict] = []
        resuming = (self.output / CHECKPOINT_META).exists()
        self.seen_molecules = set()  # the molecules init_from's weights were trained on (resume: as then)
        if not resuming and config.init_from:
            self.seen_molecules = molecules_seen_by(read_config(resolve_model_path(config.init_from)),
                                                    config.init_from,
                                                    self.data.dataset.molecules_of(self.data.val_index))
            self._initialise_from(config.init_from)
        elif not resuming and config.normalise_outputs:
            self._fit_normalisation()  # on the CPU, before the move: one float64 pass over the training split
        self.model.to(self.device)
        self.ema.to(self.device)
        self.optimizer = make_optimizer(self.model.parameters(), config)
        if resuming:
            self._load_checkpoint()  # loads onto the device; the optimizer state follows its parameters
        self.replica = self.model
        if self.ctx.world > 1:  # an element pair absent from a batch leaves its head without gradient
            self.replica = torch.nn.parallel.DistributedDataParallel(self.model, find_unused_parameters=True)

    # --- state -------------------------------------------------------------------------------
    def _fit_normalisation(self) -> None:
        """Fit the heads' shifts and scales on the whole training split (one float64 pass, no network)."""
        batch, target = self.data.batch(self.data.train_index)
        if batch.baseline is not None:
            target = target - batch.baseline
        self.model.fit_normalisation(batch, target)
        self.ema.load_state_dict(self.model.state_dict())

    def _initialise_from(self, model_dir: str) -> None:
        """Start from another model's weights and normalisation; its architecture must be this run's."""
        from ..io import read_model

        network = read_model(model_dir, dtype=self.dtype)[0].network
        if network.config != self.config.model:
            raise InputError(f"init_from {model_dir}: its model config {network.config.to_dict()} differs from this "
                             f"run's {self.config.model.to_dict()}; use the same [model] settings")
        self.model.load_state_dict(network.state_dict())
        self.ema.load_state_dict(network.state_dict())

    def save_checkpoint(self) -> None:
        """Atomic: tensors and metadata are written to temporary files, then renamed."""
        write_checkpoint(self.output, {"model": self.model, "ema": self.ema}, self.optimizer,
                         {"step": self.step, "best_val_mae": self.best_val, "config": self.config.to_dict(),
                          "dataset_fingerprint": self.data.dataset.fingerprint,
                          "dataset_size": len(self.data.dataset),
                          "val_molecules": self.data.dataset.molecules_of(self.data.val_index),
                          "seen_molecules": sorted(self.seen_molecules)})

    def _load_checkpoint(self) -> None:
        saved = TrainConfig(**read_checkpoint_meta(self.output)["config"])
        for key in ("dataset", "seed", "n_train", "n_val", "batch_size", "max_steps", "model", "dtype"):
            if getattr(saved, key) != getattr(self.config, key):
                raise InputError(f"{self.output} holds a run with {key}={getattr(saved, key)!r}, not "
                                 f"{getattr(self.config, key)!r}; resume with the same settings or use a new output")
        meta = load_checkpoint(self.output, {"model": self.model, "ema": self.ema}, self.optimizer)
        check_same_validation(meta, self.data.dataset.molecules_of(self.data.val_index), self.output)
        self.seen_molecules = set(meta.get("seen_molecules", []))
        self.step = int(meta["step"])
        self.best_val = float(meta["best_val_mae"])
        self.history = read_log(self.output, self.step)

    # --- loop --------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, model: HamiltonianModel | None = None, indices=None) -> float:
        """MAE of F (Hartree) over all matrix elements of the validation molecules (EMA weights)."""
        model = model or self.ema
        indices = self.data.val_index if indices is None else indices
        total, count = 0.0, 0
        for start in range(0, len(indices), 64):
            batch, target = self.data.batch(indices[start:start + 64])
            pred = model(batch.to(self.device, self.dtype)).to("cpu", torch.float64)
            mask = batch.ao_mask()
            total += float((pred - target)[mask].abs().sum())
            count += int(mask.sum())
        return total / max(count, 1)

    def train_step(self) -> tuple[float, float]:
        """One optimiser step; returns (loss, batch MAE in Hartree)."""
        self.model.train()
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.config, self.step)
        indices = distributed.shard(self.data.step_indices(self.step), self.ctx)
        batch, target = self.data.batch(indices)
        batch = batch.to(self.device, self.dtype)
        pred = self.replica(batch)
        loss, mae = matrix_loss(pred, target.to(self.device, self.dtype), batch.ao_mask(), self.config.loss_unit,
                                self.ctx)
        for weight, error in ((self.config.orbital_loss_weight, self.data.orbital_energy_error),
                              (self.config.density_loss_weight, self.data.density_error)):
            if weight > 0:  # a mean over the global batch, as in matrix_loss
                total, count = error(indices, pred)
                count = distributed.global_sum(count, self.ctx).to(total.dtype)
                loss = loss + weight * total * self.ctx.world / count / self.config.loss_unit
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_grad)
        self.optimizer.step()
        update_ema(self.ema, self.model, self.config.ema_decay, self.step)
        self.step += 1
        return float(loss.detach()), float(mae.detach())

    def run(self, stop_at_step: int | None = None) -> dict:
        """Train until ``max_steps`` (or ``stop_at_step``, or ``max_minutes``); returns a summary."""
        config = self.config
        end = min(config.max_steps, stop_at_step or config.max_steps)
        start_time, start_step = time.perf_counter(), self.step
        running = []
        with tqdm(total=config.max_steps, initial=self.step, desc="training", unit="step",
                  disable=not self.progress) as bar:
            while self.step < end:
                loss, mae = self.train_step()
                running.append((loss, mae))
                bar.update()
                timed_out = config.max_minutes is not None and \
                    time.perf_counter() - start_time > 60 * config.max_minutes
                timed_out = bool(distributed.global_sum(float(timed_out), self.ctx) > 0)  # all stop together
                if (self.step % config.val_every == 0 or self.step == end or timed_out) and self.ctx.main:
                    self._validate_and_save(running, time.perf_counter() - start_time, self.step - start_step)
                    bar.set_postfix(val_mae_uHa=f"{self.history[-1]['val_mae_uha']:.1f}")
                if self.step % config.val_every == 0 or self.step == end or timed_out:
                    running = []
                if timed_out:
                    break
        return {"step": self.step, "best_val_mae_uha": self.best_val * 1e6,
                "seconds": time.perf_counter() - start_time,
                "seconds_per_step": (time.perf_counter() - start_time) / max(1, self.step - start_step)}

    def _validate_and_save(self, running, seconds, steps) -> None:
        val = self.validate()
        row = {"step": self.step, "lr": learning_rate(self.config, self.step - 1),
               "train_loss": float(np.mean([r[0] for r in running])),
               "train_mae_uha": 1e6 * float(np.mean([r[1] for r in running])),
               "val_mae_uha": 1e6 * val, "seconds_per_step": seconds / max(1, steps)}
        self.history.append(row)
        if val < self.best_val:
            self.best_val = val
            self.export(self.output / "best")
        self.save_checkpoint()
        write_log(self.output, self.history)
        plot_learning_curve(self.history, self.output / "learning_curve.png")

    def export(self, directory: Path) -> Path:
        """Write the EMA model as a model directory with its training summary."""
        training = {"dataset": str(self.config.dataset), "n_train": len(self.data.train_index),
                    "n_val": len(self.data.val_index), "step": self.step, "val_mae_uha": self.best_val * 1e6,
                    "xc": self.settings.xc, "grid_level": self.settings.grid_level,
                    "conv_tol": self.settings.conv_tol, "train_config": self.config.to_dict(),
                    "dataset_fingerprint": self.data.dataset.fingerprint}
        if self.data.dataset.molecules_of(self.data.train_index):  # molecule-disjoint: what the weights have seen
            training["val_molecules"] = self.data.dataset.molecules_of(self.data.val_index)
            training["train_molecules"] = sorted(self.seen_molecules
                                                 | set(self.data.dataset.molecules_of(self.data.train_index)))
        return save_model(MLWFModel(self.ema, self.settings, record={"training": training}), directory)


def train_process(config: dict, progress: bool, stop_at_step: int | None) -> None:
    """One process of a distributed run (:func:`mlwfcalc.training.distributed.launch`): build the Trainer, run it."""
    trainer = Trainer(TrainConfig(**config), progress=progress)
    summary = trainer.run(stop_at_step=stop_at_step)
    if trainer.ctx.main:
        print(f"{trainer.ctx.world} processes: step {summary['step']}, best validation MAE of F "
              f"{summary['best_val_mae_uha']:.1f} micro-Hartree; {summary['seconds_per_step'] * 1000:.0f} ms/step")
