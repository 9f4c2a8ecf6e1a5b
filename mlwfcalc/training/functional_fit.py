"""Training the functional route end to end (PhiSNet's "energies and forces from the wavefunction"): fine-tune
a Kohn-Sham model so that the energy and forces of a functional route at its density,
``E_route[P(F_theta(R), S(R))]`` (:mod:`mlwfcalc.functional`: ``"harris"`` or ``"variational"``), match the
labels' energies and forces, with the labels' own F as the regulariser that keeps F a Kohn-Sham matrix.

The loss, per frame (mean over the batch):

    w_E huber(dE / n_atoms / meV, d_E) + w_F huber(u . dF_nuc / (meV/A), d_F) + w_fock mean(dF_ij / micro-Hartree)^2

where ``dE`` is the route's energy error, ``dF_nuc`` its force error ``(3 n_atoms,)`` and ``dF_ij`` the error of
the predicted Kohn-Sham matrix over its AO elements. ``u`` is a random unit vector in the 3 n_atoms nuclear
coordinates, drawn afresh each time (a function of seed, step and frame); since ``E[u u^T] = 1 / (3 n_atoms)``,
the middle term (below ``d_F``) is an unbiased estimate of the mean squared force error per component.
``huber(x, d)`` is ``x^2`` for ``|x| <= d`` and ``2 d |x| - d^2`` beyond: a few frames whose predicted density is
far off (spurious orbitals, errors of eV/A that the calculator refuses) pull with a bounded force instead of
deciding the step.

Why one direction: ``u . F_route = -(E(R + h u) - E(R - h u)) / 2h + O(h^2)``, and the weight gradient of
that is the difference of two energy gradients ``dE/dtheta`` at ``R + h u`` and ``R - h u``, each one backward
pass through the network with ``dE/dP`` (:func:`~mlwfcalc.functional.energy_derivative`: ``F_KS[P]``, or the
Hartree-XC kernel on ``P_out - P`` for Harris). So the force loss needs no second derivative through PySCF's
derivative integrals and no nuclear gradient at all; the energy at ``R`` is the mean of the two (error
``h^2 / 2`` times the curvature along ``u``: about 1e-7 Hartree at the default step). Per frame: two Fock builds (and two kernels for Harris)
and three network passes (the third at ``R`` for the F term). Frames labelled without forces
(``mlwfcalc label --no-forces``) give the energy and F terms from one Fock build at ``R``. Frames where the
starting model's density holds spurious occupied orbitals (the calculator refuses the route there) are left out of
both splits.

A run lives in one directory, like :mod:`mlwfcalc.training.transfer`'s: ``checkpoint.*`` (resumable at any
moment), ``log.csv`` (one row per validation: the route's energy MAE per atom, the directional force RMSE, F's
MAE against the labels), ``best/`` (the best EMA model by the validation loss without the F term) and, once
the schedule has ended, ``last/``. The exported model keeps the starting model's domain; its energy head and
uncertainty are left out (their inputs, the network's features, have moved): fit them again on the result
(``mlwfcalc fit-energy``, ``mlwfcalc fit-domain``).
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.units import Bohr, Hartree

from ..data.dataset import LabelledDataset, Sample, read_molecule_names
from ..electronic import solve_orbitals
from ..functional import ROUTES, energy_derivative, model_density, route_energy
from ..io import read_model, save_model
from ..model import MLWFModel
from ..predictor import HamiltonianPredictor
from ..pyscf import reference_scf
from ..validation import InputError
from .checkpoint import molecules_seen_by
from .fine_tuning import FineTuningRun
from .optimisation import OptimisationSettings, batch_indices, learning_rate, make_optimizer, update_ema

MEV = 1000 * Hartree  # meV per Hartree
MEV_PER_A = 1000 * Hartree / Bohr  # meV/A per Hartree/Bohr
MICRO = 1e6  # micro-Hartree per Hartree


@dataclass
class FunctionalFitConfig(OptimisationSettings):
    """Settings of an end-to-end run of a functional route (``mlwfcalc train --functional ROUTE``; a TOML
    file's keys): the :class:`~mlwfcalc.training.optimisation.OptimisationSettings` (defaults for fine-tuning:
    batch 4, 500 steps, lr 5e-5 to 1e-6, EMA 0.99, float64: the directional difference needs it) and:

    Attributes:
        dataset: Kohn-Sham label database (energies, F; forces where labelled).
        init_from: the Kohn-Sham model (directory or shipped name) whose network starts the run.
        route: ``"harris"`` or ``"variational"``.
        output: run directory.
        validation_molecules: a JSON list of SMILES whose frames are the validation split (e.g. the starting
            model's own validation molecules); otherwise the seeded molecule-disjoint split of ``n_train, n_val``.
        energy_weight, force_weight, fock_weight: the loss weights (module docstring).
        energy_huber, force_huber: ``d_E`` (meV/atom) and ``d_F`` (meV/A), where the squares turn linear.
        displacement: ``h``, Bohr, of the directional difference.
        approximate_kernel: build Harris's Hartree-XC kernel (which steers the step; the loss is exact either way)
            with RI-J on grid level 1 instead of the model's own grid and exact J.
    """

    batch_size: int = 4
    max_steps: int = 500
    lr: float = 5e-5
    lr_min: float = 1e-6
    warmup_steps: int = 20
    ema_decay: float = 0.99
    val_every: int = 50
    dtype: str = "float64"
    dataset: str = ""
    init_from: str = ""
    route: str = "harris"
    output: str = "run-functional"
    validation_molecules: str | None = None
    energy_weight: float = 1.0
    force_weight: float = 1e-2
    fock_weight: float = 1e-3
    energy_huber: float = 10.0
    force_huber: float = 250.0
    displacement: float = 2e-3
    approximate_kernel: bool = True

    def __post_init__(self):
        super().__post_init__()
        if self.route not in ROUTES:
            raise InputError(f"route {self.route!r}: choose one of {', '.join(ROUTES)}")
        if self.dtype != "float64":
            raise InputError("the functional route's directional force difference needs dtype float64")
        if not 1e-4 <= self.displacement <= 1e-2:
            raise InputError(f"displacement {self.displacement} Bohr: choose one in [1e-4, 1e-2]")


@dataclass
class FrameTerms:
    """One frame's loss terms (weights not applied) and errors: energy error per atom (meV), the directional
    force error ``u . dF`` (meV/A; nan without force labels) and F's mean square error (micro-Hartree^2)."""

    energy: float
    force: float
    fock: float


class FunctionalTrainer(FineTuningRun):
    """Runs (or resumes) one end-to-end run of a functional route; the module docstring says what it trains."""

    config_class = FunctionalFitConfig
    resume_keys = ("dataset", "init_from", "route", "seed", "n_train", "n_val", "validation_molecules",
                   "batch_size", "max_steps")
    logged_train_keys = ("loss", "energy_mae_mev_per_atom", "force_rmse_mev_per_a", "fock_rmse_uha")
    progress_label = "functional fit"

    def __init__(self, config: FunctionalFitConfig, progress: bool = True):
        self._open(config, progress)
        self.dataset = LabelledDataset(config.dataset, kohn_sham=True)
        self._check_labels()
        if not config.init_from:
            raise InputError("give the Kohn-Sham model to start from: --init-from MODEL")
        start = read_model(config.init_from, dtype=torch.float64)[0]
        if start.record.get("transfer"):
            raise InputError(f"{config.init_from} is a transfer model (its energies are "
                             f"{start.record['transfer'].get('high_level')}); start from a Kohn-Sham model")
        missing = sorted(set(self.dataset.elements) - set(start.elements))
        if missing:
            raise InputError(f"{config.dataset} holds elements {missing} that {config.init_from} does not cover")
        labels = self.dataset.settings
        if (labels.xc.lower(), labels.basis.lower()) != (start.theory.xc.lower(), start.theory.basis.lower()):
            raise InputError(f"{config.dataset} is labelled in {labels.name}, {config.init_from} in "
                             f"{start.theory.name}: the route's energies must be at the labels' level")
        self.train_index, self.val_index = self._split()
        torch.manual_seed(config.seed)
        model = MLWFModel(start.network, start.theory, domain=start.domain, record=start.record)
        self.model = HamiltonianPredictor(model.to(self.device), self.device)
        self.left_out = self._unserved(np.concatenate([self.train_index, self.val_index]))
        self.train_index, self.val_index = (np.setdiff1d(i, self.left_out) for i in (self.train_index, self.val_index))
        if len(self.train_index) < config.batch_size:
            raise InputError(f"{len(self.train_index)} training samples is fewer than batch_size {config.batch_size}")
        self.start_record = start.record
        self.seen_molecules = molecules_seen_by(start.record, config.init_from,
                                                self.dataset.molecules_of(self.val_index))
        self.ema = HamiltonianPredictor(copy.deepcopy(model).requires_grad_(False), self.device)
        self.optimizer = make_optimizer(list(model.network.parameters()), config)
        if self.resuming:
            self._resume()

    def _split(self) -> tuple[np.ndarray, np.ndarray]:
        if self.config.validation_molecules is None:
            return tuple(self.dataset.split([self.config.n_train, self.config.n_val], self.config.seed))
        return self.dataset.split_by_molecules(read_molecule_names(self.config.validation_molecules),
                                               self.config.validation_molecules)

    def _unserved(self, indices: np.ndarray) -> np.ndarray:
        """The frames among ``indices`` where the starting model's density holds spurious occupied orbitals:
        the calculator refuses the functional routes there, and their errors (eV/A) would steer every step."""
        import warnings

        left_out = []
        for index in indices:
            sample = self.dataset[int(index)]
            atoms = Atoms(sample.numbers.numpy(), positions=sample.positions.numpy() * Bohr)
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                (prediction,) = self.model.predict_checked([atoms], [(0, 0)], energy=False)
            if prediction.spurious_orbitals:
                left_out.append(int(index))
        return np.asarray(left_out, dtype=int)

    # --- the loss of one frame -------------------------------------------------------------
    def _direction(self, sample: Sample, index: int, step: int) -> np.ndarray:
        """The unit vector ``u`` ``(n_atoms, 3)`` of frame ``index`` at ``step`` (validation: step -1)."""
        generator = np.random.default_rng([self.config.seed, step + 1, index])
        u = generator.normal(size=tuple(sample.positions.shape))
        return u / np.linalg.norm(u)

    def _energy_pass(self, model: HamiltonianPredictor, sample: Sample, positions: np.ndarray, train: bool):
        """The route's energy (Hartree) at ``positions`` (Bohr) and, with ``train``, the pair (density tensor,
        ``dE/dP``) whose backward gives ``dE/dtheta``."""
        atoms = Atoms(sample.numbers.numpy(), positions=positions * Bohr)
        mol = model.make_mole(atoms, 0, 0)
        with torch.set_grad_enabled(train):
            fock, density = model_density(model, atoms, torch.as_tensor(positions, dtype=torch.float64), mol)
        dm = density.detach().numpy()
        overlap = mol.intor("int1e_ovlp")
        mf = reference_scf(model, mol)
        at_density = route_energy(mf, dm, overlap, self.config.route)
        if not train:
            return at_density.energy, None
        orbitals = solve_orbitals(torch.as_tensor(fock.detach()), torch.as_tensor(overlap), mol.nelectron,
                                  subspace=model.overlap_subspace)  # their density is dm (the XC kernel's)
        if self.config.route == "harris" and self.config.approximate_kernel:
            mf = reference_scf(model, mol).density_fit()
            mf.grids.level = 1
        gradient = energy_derivative(mf, dm, at_density, self.config.route, orbitals.coefficients.numpy(),
                                     orbitals.occupations.numpy())
        return at_density.energy, (density, torch.as_tensor(gradient))

    def frame_terms(self, model: HamiltonianPredictor, index: int, step: int, train: bool) -> FrameTerms:
        """Loss terms of frame ``index``; with ``train``, their weighted gradient (divided by the batch size)
        is accumulated into ``model``'s weights."""
        c = self.config
        sample = self.dataset[int(index)]
        n_atoms = len(sample.numbers)
        positions = sample.positions.numpy()
        with_forces = sample.forces is not None
        if with_forces:
            u = self._direction(sample, int(index), step)
            passes = [self._energy_pass(model, sample, positions + sign * c.displacement * u, train)
                      for sign in (1, -1)]
            energy = (passes[0][0] + passes[1][0]) / 2
            directional = -(passes[0][0] - passes[1][0]) / (2 * c.displacement)  # u . F, Hartree/Bohr
            force_error = (directional - float((sample.forces.numpy() * u).sum())) * MEV_PER_A
        else:
            passes = [self._energy_pass(model, sample, positions, train)]
            energy, force_error = passes[0][0], math.nan
        energy_error = (energy - float(sample.energy)) * MEV / n_atoms
        with torch.set_grad_enabled(train):
            atoms = Atoms(sample.numbers.numpy(), positions=positions * Bohr)
            mol = model.make_mole(atoms, 0, 0)
            fock = _predicted_fock(model, atoms, sample.positions, mol)
            fock_term = ((fock - sample.fock) * MICRO).pow(2).mean()
        if train:
            scale = 1.0 / c.batch_size
            # d/dE and d/d(u.F) of the weighted loss, Hartree^-1 and (Hartree/Bohr)^-1
            d_energy = c.energy_weight * _huber_slope(energy_error, c.energy_huber) * MEV / n_atoms
            outputs, grads = [], []
            if with_forces:
                d_force = c.force_weight * _huber_slope(force_error, c.force_huber) * MEV_PER_A
                for sign, (_, (density, d_e_d_p)) in zip((1, -1), passes):
                    coefficient = d_energy / 2 - sign * d_force / (2 * c.displacement)
                    outputs.append(density)
                    grads.append(scale * coefficient * d_e_d_p)
            else:
                density, d_e_d_p = passes[0][1]
                outputs.append(density)
                grads.append(scale * d_energy * d_e_d_p)
            outputs.append(c.fock_weight * scale * fock_term)
            grads.append(torch.ones((), dtype=fock_term.dtype))
            torch.autograd.backward(outputs, grads)
        return FrameTerms(energy=energy_error, force=force_error, fock=float(fock_term.detach()))

    def weighted(self, terms: list[FrameTerms], regulariser: bool = True) -> float:
        """The mean weighted loss of ``terms``."""
        c = self.config
        values = []
        for t in terms:
            value = c.energy_weight * _huber(t.energy, c.energy_huber)
            value += 0.0 if math.isnan(t.force) else c.force_weight * _huber(t.force, c.force_huber)
            values.append(value + (c.fock_weight * t.fock if regulariser else 0.0))
        return float(np.mean(values))

    # --- loop --------------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.config, self.step)
        indices = batch_indices(self.train_index, self.config.batch_size, self.config.seed, self.step)
        self.optimizer.zero_grad(set_to_none=True)
        terms = [self.frame_terms(self.model, int(i), self.step, train=True) for i in indices]
        torch.nn.utils.clip_grad_norm_(self.model.model.parameters(), self.config.clip_grad)
        self.optimizer.step()
        update_ema(self.ema.model, self.model.model, self.config.ema_decay, self.step)
        self.step += 1
        return _summary(terms) | {"loss": self.weighted(terms)}

    def validate(self) -> dict[str, float]:
        """Validation errors of the EMA model (fixed directions): the route's energy MAE per atom (meV, and
        offset-free), the directional force RMSE (meV/A), F's RMSE against the labels (micro-Hartree), and the
        loss without the F term."""
        terms = [self.frame_terms(self.ema, int(i), -1, train=False) for i in self.val_index]
        return _summary(terms) | {"loss": self.weighted(terms, regulariser=False)}

    def export(self, directory: Path, validation: dict[str, float]) -> Path:
        """Write the EMA network with the starting model's record (less its energy route's figures, which
        were of the old weights) and this run's under ``"functional_fit"``; no energy head, no uncertainty."""
        record = {k: v for k, v in self.start_record.items() if k != "energy_route"}
        record["functional_fit"] = {"route": self.config.route, "dataset": str(self.config.dataset),
                                    "init_from": str(self.config.init_from), "n_train": len(self.train_index),
                                    "n_val": len(self.val_index), "step": self.step, "validation": validation,
                                    "left_out_spurious_orbitals": len(self.left_out),
                                    "dataset_fingerprint": self.dataset.fingerprint, "config": asdict(self.config),
                                    "val_molecules": self.dataset.molecules_of(self.val_index),
                                    "train_molecules": sorted(self.seen_molecules
                                                              | set(self.dataset.molecules_of(self.train_index)))}
        ema = self.ema.model
        return save_model(MLWFModel(ema.network, ema.theory, domain=ema.domain, record=record), directory)


def _predicted_fock(model: HamiltonianPredictor, atoms: Atoms, positions: torch.Tensor, mol) -> torch.Tensor:
    """The predicted F ``(nao, nao)``, float64 on the host, of ``atoms`` at ``positions`` (Bohr)."""
    out = model.model(model.graph_batch([atoms], [positions], [mol]), [mol], [positions])
    return out.fock[0, :mol.nao, :mol.nao].to("cpu", torch.float64)


def _huber(x: float, d: float) -> float:
    """``x^2`` for ``|x| <= d``, ``2 d |x| - d^2`` beyond."""
    return x * x if abs(x) <= d else 2 * d * abs(x) - d * d


def _huber_slope(x: float, d: float) -> float:
    """``d huber(x, d) / dx``."""
    return 2 * x if abs(x) <= d else 2 * d * math.copysign(1.0, x)


def _summary(terms: list[FrameTerms]) -> dict[str, float]:
    forces = np.array([t.force for t in terms])
    return {"energy_mae_mev_per_atom": float(np.mean([abs(t.energy) for t in terms])),
            "energy_median_mev_per_atom": float(np.median([abs(t.energy) for t in terms])),
            "force_median_abs_mev_per_a": float(np.nanmedian(np.abs(forces))) if np.isfinite(forces).any() else math.nan,
            "energy_mae_offset_free_mev_per_atom": float(np.mean(np.abs([t.energy for t in terms]
                                                                        - np.mean([t.energy for t in terms])))),
            "force_rmse_mev_per_a": float(np.sqrt(np.nanmean(forces ** 2))) if np.isfinite(forces).any() else math.nan,
            "fock_rmse_uha": float(np.sqrt(np.mean([t.fock for t in terms])))}
