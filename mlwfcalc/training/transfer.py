"""Transfer learning (PhiSNet's third claim): fine-tune a Kohn-Sham model on high-level observables.

A model trained on PBE Kohn-Sham matrices starts the run. A new energy head is first fitted on the
frozen network to the energies and forces of a correlated label set (``mlwfcalc label --method
ccsd(t)``; stage 1, the head-only transfer); then the network and the head are trained together,
through the wavefunction, on its energies, forces and dipoles (stage 2). The model's energy is

    E = E_nn + E_el[P(F), F] + sum_A e_A(h_A)

where F is the predicted Kohn-Sham matrix, P its closed-shell density matrix in the exact overlap,
E_el PhiSNet's ``1/2 tr[P (H_core + F)]`` (term ``"half-core"``) or ``tr(P F)`` (``"band"``), and
e_A the energy head on atom A's invariant features. Forces are ``-dE/dR`` (autograd through the
network, P, S(R) and H_core(R)); the dipole is ``sum_A Z_A R_A - tr(P r)`` of the same P. Training
on forces differentiates these forces again in the weights.

The loss, per batch:

    w_E mean(dE / meV)^2 + w_F mean(dF_xyz / (meV/A))^2 + w_mu mean(dmu_xyz / mD)^2
    + w_reg mean(dF_ij / micro-Hartree)^2

The last term keeps F close to the starting model's F on the same geometries (``dF_ij`` over the
AO matrix elements), so that the orbitals and the density stay those of a Kohn-Sham Hamiltonian
where the high-level data say nothing about them; ``fock_weight`` sets how far F may move.

A run lives in one directory, like :mod:`mlwfcalc.training.trainer`'s: ``checkpoint.*`` (resumable at any
moment), ``log.csv``, ``best/`` (the best model by validation loss without the regulariser, EMA
weights) and, once the schedule has ended, ``last/`` (the final EMA weights). The loss is a mean of
squares, so a few far-off validation frames can decide ``best``; compare the two on the validation
MAEs in ``log.csv``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.units import Bohr, Debye, Hartree

from ..data.dataset import LabelledDataset, Sample
from ..electronic import density_matrix, dipole_moment, overlap_matrix
from ..energy import EnergyConfig, EnergyHead
from ..io import read_model, save_model
from ..model import MLWFModel
from ..predictor import HamiltonianPredictor
from ..validation import InputError
from .checkpoint import molecules_seen_by
from .fine_tuning import FineTuningRun
from .optimisation import OptimisationSettings, batch_indices, learning_rate, make_optimizer, update_ema

MEV = 1000 * Hartree  # meV per Hartree
MEV_PER_A = 1000 * Hartree / Bohr  # meV/A per Hartree/Bohr
MILLIDEBYE = 1000 * Bohr / Debye  # mD per e*Bohr (ASE's Debye is in e*A)
MICRO = 1e6  # micro-Hartree per Hartree


@dataclass
class TransferConfig(OptimisationSettings):
    """Settings of a fine-tuning run (``mlwfcalc train --transfer``; a TOML file's keys): the
    :class:`~mlwfcalc.training.optimisation.OptimisationSettings` (defaults for fine-tuning: batch 8, 3,000
    steps, lr 1e-4 to 1e-6, EMA 0.99, float64 since forces are differentiated twice) and:

    Attributes:
        high_level: label database of a correlated method (energies, forces, dipoles).
        init_from: the Kohn-Sham model (directory or shipped name) whose network starts the run.
        output: run directory.
        term: the electronic energy term, ``"half-core"`` (PhiSNet) or ``"band"``.
        hidden: the energy head's MLP widths.
        energy_weight, force_weight, dipole_weight, fock_weight: loss weights (module docstring).
        head_epochs: epochs of the head-only stage on the frozen network before the joint fine-tuning.
    """

    batch_size: int = 8
    max_steps: int = 3000
    lr: float = 1e-4
    lr_min: float = 1e-6
    warmup_steps: int = 100
    ema_decay: float = 0.99
    val_every: int = 100
    dtype: str = "float64"
    high_level: str = ""
    init_from: str = ""
    output: str = "run-transfer"
    term: str = "half-core"
    hidden: list[int] = field(default_factory=lambda: [64, 64])
    energy_weight: float = 1.0
    force_weight: float = 1.0
    dipole_weight: float = 1.0
    fock_weight: float = 1e-2
    head_epochs: int = 300

    def __post_init__(self):
        super().__post_init__()
        if self.head_epochs < 1:
            raise InputError(f"head_epochs {self.head_epochs}: the head-only stage needs at least one epoch")
        if self.term not in ("half-core", "band"):
            raise InputError(f"term {self.term!r}: the transfer model's energy needs an electronic term, "
                             "half-core or band")


@dataclass
class Observables:
    """Model predictions for a batch of ``B`` molecules with ``N`` atoms in all (float64 on the host).

    Attributes:
        energy: ``(B,)`` Hartree; forces: ``(N, 3)`` Hartree/Bohr; dipole: ``(B, 3)`` e*Bohr (origin 0).
        fock: ``(B, nmax, nmax)`` the predicted F, Hartree (network dtype and device), zero padded.
        batch: the graph the network ran on (its ``ao_mask()`` marks the valid F entries).
    """

    energy: torch.Tensor
    forces: torch.Tensor
    dipole: torch.Tensor
    fock: torch.Tensor
    batch: object


def predict_observables(model: HamiltonianPredictor, samples: list[Sample], create_graph: bool) -> Observables:
    """Energies, forces and dipoles of ``samples`` from ``model``'s F and energy head.

    ``create_graph=True`` keeps the graph of the forces and dipoles for a loss on them (training).
    """
    atoms = [Atoms(s.numbers.numpy(), positions=s.positions.numpy() * Bohr) for s in samples]
    moles = [model.make_mole(a) for a in atoms]
    with torch.enable_grad():
        positions = [s.positions.clone().requires_grad_(True) for s in samples]
        batch = model.graph_batch(atoms, positions, moles)
        out = model.model(batch, moles, positions, energy=True)
        gradients = torch.autograd.grad(out.energy.sum(), positions, create_graph=create_graph)
    dipoles = []
    with torch.set_grad_enabled(create_graph):
        for mol, p, fock in zip(moles, positions, out.fock):
            f = fock[:mol.nao, :mol.nao].to("cpu", torch.float64)
            density = density_matrix(f, overlap_matrix(mol, p.detach()), mol.nelectron)
            dipoles.append(dipole_moment(mol, density))
    if not create_graph:
        out.energy, out.fock = out.energy.detach(), out.fock.detach()
    return Observables(energy=out.energy, forces=-torch.cat(gradients), dipole=torch.stack(dipoles), fock=out.fock,
                       batch=batch)


def errors(observables: Observables, samples: list[Sample]) -> dict[str, np.ndarray]:
    """Per-molecule energy errors (meV), per-component force (meV/A) and dipole (mD) errors."""
    energy = torch.stack([s.energy for s in samples])
    forces = torch.cat([s.forces for s in samples])
    dipole = torch.stack([s.dipole for s in samples])
    return {"energy": ((observables.energy.detach() - energy) * MEV).numpy(),
            "forces": ((observables.forces.detach() - forces) * MEV_PER_A).reshape(-1).numpy(),
            "dipole": ((observables.dipole.detach() - dipole) * MILLIDEBYE).reshape(-1).numpy()}


class TransferTrainer(FineTuningRun):
    """Runs (or resumes) one fine-tuning run; see the module docstring for what it trains and writes."""

    config_class = TransferConfig
    resume_keys = ("high_level", "init_from", "seed", "n_train", "n_val", "batch_size", "max_steps", "term",
                   "hidden", "dtype")
    logged_train_keys = ("loss", "energy", "forces", "dipole", "fock")

    def __init__(self, config: TransferConfig, progress: bool = True):
        self._open(config, progress)
        dtype = getattr(torch, config.dtype)
        self.dataset = LabelledDataset(config.high_level, kohn_sham=False)
        self._check_labels()
        self.high_level = self.dataset.settings
        if not config.init_from:
            raise InputError("give the Kohn-Sham model to start from: --init-from MODEL")
        start = read_model(config.init_from, dtype=dtype)[0]
        missing = sorted(set(self.dataset.elements) - set(start.elements))
        if missing:
            raise InputError(f"{config.high_level} holds elements {missing} that {config.init_from} does not cover")
        self.train_index, self.val_index = self.dataset.split([config.n_train, config.n_val], config.seed)
        if len(self.train_index) < config.batch_size:
            raise InputError(f"{len(self.train_index)} training samples is fewer than batch_size {config.batch_size}")
        self.start_record = start.record
        self.seen_molecules = molecules_seen_by(start.record, config.init_from,
                                                self.dataset.molecules_of(self.val_index))
        self.reference_network = copy.deepcopy(start.network).to(self.device).eval().requires_grad_(False)
        torch.manual_seed(config.seed)
        model = MLWFModel(start.network, start.theory, domain=start.domain)
        resuming = self.resuming
        model.energy_head = self._blank_head(model) if resuming else self._initial_head(model)
        self.model = HamiltonianPredictor(model.to(self.device), self.device)
        self.ema = HamiltonianPredictor(copy.deepcopy(model).requires_grad_(False), self.device)
        self.optimizer = make_optimizer(list(model.network.parameters()) + list(model.energy_head.parameters()),
                                        config)
        if resuming:
            self._resume()

    def _blank_head(self, model: MLWFModel) -> EnergyHead:
        """A head of this run's shape, to be filled from the checkpoint."""
        width = model.network.invariant_width("invariants")
        return EnergyHead(EnergyConfig(term=self.config.term, features="invariants", elements=model.elements,
                                       num_scalars=width, hidden=list(self.config.hidden))).to(self.device)

    def _initial_head(self, model: MLWFModel) -> EnergyHead:
        """Stage 1, the head-only transfer: a new head fitted on the frozen starting network to the
        high-level energies and forces of the training split (:func:`~mlwfcalc.training.energy_fit.fit_energy_head`,
        ``head_epochs`` epochs, best on the validation split); the joint fine-tuning starts from it."""
        from .energy_fit import EnergyFitConfig, fit_energy_head, precompute

        predictor = HamiltonianPredictor(model.to(self.device), self.device)
        train, val = (precompute(predictor, [self.dataset[int(i)] for i in index], self.config.term, "invariants",
                                 progress=self.progress) for index in (self.train_index, self.val_index))
        fit = EnergyFitConfig(term=self.config.term, features="invariants", hidden=list(self.config.hidden),
                              energy_weight=self.config.energy_weight, force_weight=self.config.force_weight,
                              epochs=self.config.head_epochs, seed=self.config.seed)
        head, self.head_history = fit_energy_head(train, val, model.elements, fit, progress=self.progress)
        return head.to(self.device)

    # --- loop --------------------------------------------------------------------------------
    def losses(self, observables: Observables, samples: list[Sample]) -> dict[str, torch.Tensor]:
        """The loss terms of the module docstring (weights not applied)."""
        energy = torch.stack([s.energy for s in samples])
        forces = torch.cat([s.forces for s in samples])
        dipole = torch.stack([s.dipole for s in samples])
        with torch.no_grad():
            reference_fock = self.reference_network(observables.batch)
        mask = observables.batch.ao_mask()
        return {"energy": ((observables.energy - energy) * MEV).pow(2).mean(),
                "forces": ((observables.forces - forces) * MEV_PER_A).pow(2).mean(),
                "dipole": ((observables.dipole - dipole) * MILLIDEBYE).pow(2).mean(),
                "fock": ((observables.fock - reference_fock)[mask].to(torch.float64) * MICRO).pow(2).mean()}

    def weighted(self, terms: dict[str, torch.Tensor], regulariser: bool = True) -> torch.Tensor:
        c = self.config
        total = c.energy_weight * terms["energy"] + c.force_weight * terms["forces"] + c.dipole_weight * terms["dipole"]
        return total + c.fock_weight * terms["fock"] if regulariser else total

    def train_step(self) -> dict[str, float]:
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.config, self.step)
        indices = batch_indices(self.train_index, self.config.batch_size, self.config.seed, self.step)
        samples = [self.dataset[int(i)] for i in indices]
        terms = self.losses(predict_observables(self.model, samples, create_graph=True), samples)
        loss = self.weighted(terms)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.model.parameters(), self.config.clip_grad)
        self.optimizer.step()
        update_ema(self.ema.model, self.model.model, self.config.ema_decay, self.step)
        self.step += 1
        return {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in terms.items()}}

    def validate(self, model: HamiltonianPredictor | None = None, indices=None) -> dict[str, float]:
        """Validation errors of the EMA model: energy (raw and offset-free), force and dipole MAE, how far
        F moved from the starting model (RMS over matrix elements, micro-Hartree), and the loss without
        the regulariser."""
        model = model or self.ema
        indices = self.val_index if indices is None else indices
        parts, terms, count = [], {}, 0
        for start in range(0, len(indices), 16):
            samples = [self.dataset[int(i)] for i in indices[start:start + 16]]
            observables = predict_observables(model, samples, create_graph=False)
            parts.append(errors(observables, samples))
            for k, v in self.losses(observables, samples).items():
                terms[k] = terms.get(k, 0.0) + float(v) * len(samples)
            count += len(samples)
        e, f, d = (np.concatenate([p[k] for p in parts]) for k in ("energy", "forces", "dipole"))
        mean = {k: torch.tensor(v / count) for k, v in terms.items()}
        return {"energy_mae_mev": float(np.abs(e).mean()),
                "energy_mae_offset_free_mev": float(np.abs(e - e.mean()).mean()),
                "force_mae_mev_per_a": float(np.abs(f).mean()), "dipole_mae_md": float(np.abs(d).mean()),
                "fock_shift_rms_uha": float(math.sqrt(mean["fock"])),
                "loss": float(self.weighted(mean, regulariser=False))}

    def export(self, directory: Path, validation: dict[str, float]) -> Path:
        """Write the EMA model, with the starting model's record and this run's under ``"transfer"``.

        F stays at the starting model's level of theory (``theory``); the energies, forces and dipoles
        follow ``record["transfer"]["high_level"]``. The starting model's uncertainty is not carried
        over (the fine-tuned features differ, and its yardstick is F): ``mlwfcalc train --transfer``
        fits a new one on this run's high-level split at the end (or ``mlwfcalc fit-domain``).
        """
        transfer = {"high_level": self.high_level.name, "high_level_dataset": str(self.config.high_level),
                    "init_from": str(self.config.init_from), "n_train": len(self.train_index),
                    "n_val": len(self.val_index), "step": self.step, "validation": validation,
                    "dataset_fingerprint": self.dataset.fingerprint,
                    "config": asdict(self.config)}
        if self.dataset.molecules_of(self.train_index):  # molecule-disjoint: what the weights have seen
            transfer["val_molecules"] = self.dataset.molecules_of(self.val_index)
            transfer["train_molecules"] = sorted(self.seen_molecules | set(self.dataset.molecules_of(self.train_index)))
        ema = self.ema.model
        model = MLWFModel(ema.network, ema.theory, ema.energy_head, domain=ema.domain,
                          record={**self.start_record, "transfer": transfer})
        return save_model(model, directory)
