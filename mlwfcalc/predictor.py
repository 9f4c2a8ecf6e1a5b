"""The Python surface every front end uses: ``load_model(...)`` and ``model.predict(atoms)``."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from ase import Atoms
from ase.units import Bohr
from pyscf import gto

from .domain import OutOfDomainError, OutOfDomainWarning, enforce, hill_formula
from .electronic import LinearDependencyInBatch, Orbitals, SpuriousOrbitalWarning, solve_orbitals, spurious_occupied
from .energy import core_hamiltonian
from .choice import choose_model, is_auto
from .io import models_that_fit, read_model
from .nn.graph import make_batch
from .uncertainty import UncertainPredictionError, check_hard_limit
from .model import MLWFModel
from .validation import InputError, check_closed_shell, check_elements, check_not_periodic, check_positions


#: What a refusal of a charge or spin says can be done instead.
EXACT_ANY_STATE = ("An exact answer at any charge and spin needs no model: MLWFCalculator(mode='scf'), `mlwfcalc scf "
                   "--charge Q --spin 2S` or mlwfcalc.pyscf.guess_dm (PySCF's own guess)")


@dataclass
class Prediction:
    """What the model says about one molecule (numpy, atomic units, PySCF AO order).

    Attributes:
        fock: ``(nao, nao)`` predicted Kohn-Sham matrix, Hartree.
        overlap: ``(nao, nao)`` exact AO overlap from PySCF.
        mo_energy: ``(nmo,)`` orbital energies, Hartree (``(2, nmo)``, alpha and beta, from an open-shell SCF).
        mo_coeff: ``(nao, nmo)`` MO coefficients (columns; ``(2, nao, nmo)`` open-shell).
        mo_occ: ``(nmo,)`` occupations (2 or 0; ``(2, nmo)`` of 1 or 0 open-shell).
        density_matrix: ``(nao, nao)`` AO density matrix P (the total, alpha plus beta).
        mol: the PySCF Mole these matrices refer to.
        energy: total energy (Hartree) from the energy head, or None (no head, or not asked).
        forces: ``(n_atoms, 3)`` Hartree/Bohr, ``-dE/dR``, or None (not asked).
        uncertainty: the expected mean absolute error of the predicted F's matrix elements, Hartree (for a
            transfer model: of the force components, Hartree/Bohr; ``model.uncertainty.config.quantity``),
            from the distance of the atoms' features to the training data
            (:mod:`mlwfcalc.uncertainty`); None when the model has no uncertainty fitted.
            Compare it with ``model.uncertainty_threshold``.
        outside_domain: what lies outside the model's training domain (computed with ``domain="warn"``);
            empty inside.
        spurious_orbitals: indices of occupied orbitals that are artefacts of the predicted F (made of the
            basis's near-linear dependencies, :meth:`~mlwfcalc.electronic.Orbitals.spurious_occupied`;
            a :class:`SpuriousOrbitalWarning` was issued): orbital energies, density and dipole are then
            unreliable even where the F uncertainty looks small. Empty when the orbitals look physical.
    """

    fock: np.ndarray
    overlap: np.ndarray
    mo_energy: np.ndarray
    mo_coeff: np.ndarray
    mo_occ: np.ndarray
    density_matrix: np.ndarray
    mol: gto.Mole
    energy: float | None = None
    forces: np.ndarray | None = None
    uncertainty: float | None = None
    outside_domain: list[str] = field(default_factory=list)
    spurious_orbitals: list[int] = field(default_factory=list)

    @property
    def homo_lumo_gap(self) -> float:
        """Hartree; for unrestricted orbitals (``mo_energy`` of shape ``(2, nmo)``, from an open-shell SCF) the
        lowest empty orbital of either spin less the highest occupied one."""
        energies, occupied = np.atleast_2d(self.mo_energy), np.atleast_2d(self.mo_occ) > 0
        return float(energies[~occupied].min() - energies[occupied].max())


@dataclass
class NetworkOutput:
    """One batched network pass, on the host: F ``(B, nmax, nmax)`` (float64, zero padded), energies ``(B,)``
    Hartree, forces (one ``(n_k, 3)`` Hartree/Bohr array per molecule) and uncertainties ``(B,)`` Hartree;
    each None when not asked or not available."""

    fock: np.ndarray
    energies: np.ndarray | None
    forces: list[np.ndarray] | None
    uncertainty: np.ndarray | None


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU; ``"cuda"`` without a GPU is a clear error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device} requested but torch sees no CUDA GPU; use device='cpu' or 'auto'")
    return device


def baselines(config, moles: Sequence[gto.Mole], positions: Sequence[torch.Tensor]) -> list[torch.Tensor] | None:
    """The exact matrices a delta-learning network's output is added to (``config.target``), one ``(nao, nao)``
    per molecule, differentiable in ``positions`` (Bohr; forces see their derivative): H_core, H0, or None."""
    if config.target == "fock-hcore":
        return [core_hamiltonian(m, p.to(torch.float64)) for m, p in zip(moles, positions)]
    if config.target == "fock-h0":
        from .baseline import ZerothStepSettings, zeroth_step_hamiltonian

        settings = ZerothStepSettings(**config.zeroth_step)
        return [zeroth_step_hamiltonian(m, p.to(torch.float64), settings) for m, p in zip(moles, positions)]
    return None


class HamiltonianPredictor:
    """A loaded model, ready to predict for ASE Atoms: checks the input, builds the batch, runs the
    :class:`~mlwfcalc.model.MLWFModel` once, and turns its output into :class:`Prediction` objects.

    Args:
        model: the :class:`~mlwfcalc.model.MLWFModel` (network, energy head, uncertainty, domain, theory).
        device: where it runs.
        path: the model directory it was read from, if any.
        overlap_subspace: solve the predicted F's orbitals in the overlap eigenvectors with eigenvalue at
            least this (:func:`~mlwfcalc.electronic.solve_orbitals`; 0: the whole basis). None: the model's
            own choice (``model.overlap_subspace``, on its card).
    """

    def __init__(self, model: MLWFModel, device: torch.device, path: Path | None = None,
                 overlap_subspace: float | None = None):
        self.model = model
        self.device = device
        self.path = path
        self.overlap_subspace = model.overlap_subspace if overlap_subspace is None else overlap_subspace
        self.layout = model.network.layout
        self.basis = model.network.config.basis

    network = property(lambda self: self.model.network, doc="The network that predicts F.")
    energy_head = property(lambda self: self.model.energy_head, doc="The energy head, or None.")
    uncertainty = property(lambda self: self.model.uncertainty, doc="The fitted uncertainty, or None.")
    domain = property(lambda self: self.model.domain, doc="The training domain, or None (unknown).")
    theory = property(lambda self: self.model.theory,
                      doc="The level of theory of F and of the training labels (its SCF factory: ``make_scf``).")
    functional = property(lambda self: self.model.theory.xc)
    elements = property(lambda self: self.model.elements)

    @property
    def name(self) -> str:
        return self.path.name if self.path is not None else "the model"

    @property
    def overlap_subspace(self) -> float:
        """Its orbitals are solved in the overlap eigenvectors with eigenvalue at least this (0: the whole basis)."""
        return self._overlap_subspace

    @overlap_subspace.setter
    def overlap_subspace(self, threshold: float) -> None:
        threshold = float(threshold)
        if not 0.0 <= threshold < 1.0:
            raise InputError(f"overlap_subspace {threshold:g}: give an overlap eigenvalue threshold in [0, 1) (0: the "
                             "whole basis; about 1e-3 to 1e-2 drops a def2-SVP basis's near-linear dependencies)")
        self._overlap_subspace = threshold

    @property
    def uncertainty_threshold(self) -> float | None:
        """Above this uncertainty (Hartree, or Hartree/Bohr for a transfer model) a structure is expected to be
        more than twice as wrong as on the validation set (the model card's figure); None without a fitted
        uncertainty."""
        return None if self.uncertainty is None else self.uncertainty.config.threshold_hartree

    @property
    def uncertainty_hard_limit(self) -> float | None:
        """Past this uncertainty (same unit as :attr:`uncertainty_threshold`) errors many times the card's are
        expected, and predictions are refused by default (:class:`~mlwfcalc.uncertainty.UncertainPredictionError`);
        None without a fitted uncertainty."""
        return None if self.uncertainty is None else self.uncertainty.config.hard_limit_hartree

    def __repr__(self) -> str:
        return (f"HamiltonianPredictor({self.name}, basis={self.basis!r}, functional={self.functional!r}, "
                f"elements={self.elements}, device={self.device})")

    @property
    def dtype(self) -> torch.dtype:
        return next(self.network.parameters()).dtype

    def check_atoms(self, atoms: Atoms, charge: int = 0, spin: int = 0, where: str | None = None,
                    domain: str = "refuse") -> list[str]:
        """Refuse what the model cannot answer: pbc, bad coordinates, unknown elements (an
        :class:`OutOfDomainError` naming the models that fit), not neutral closed shell, and
        (``domain="refuse"``) a structure outside the training domain, which ``domain="warn"``
        lets through with a warning. Returns what lies outside the domain (empty when inside)."""
        check_not_periodic(atoms.pbc, where)
        check_positions(atoms.positions, where)
        try:
            check_elements(atoms.numbers, self.elements, where, what=f"this model (basis {self.basis})")
        except InputError as err:  # no opt-out: the network has no weights for that element
            raise OutOfDomainError(f"{err}.{models_that_fit(hill_formula(atoms.numbers), self.name)}") from None
        try:
            check_closed_shell(atoms.numbers, charge, spin, where, allowed_charges=self.model.charges)
        except InputError as err:
            raise InputError(f"{err} ({self.name}). {EXACT_ANY_STATE}") from None
        return enforce(self.domain, atoms.numbers, atoms.positions, domain, model_name=self.name, where=where,
                       suggest=lambda formula: models_that_fit(formula, self.name))

    def covers_state(self, numbers: Sequence[int], charge: int = 0, spin: int = 0) -> bool:
        """Whether the model was trained for this charge and spin (2S) of a molecule of ``numbers``."""
        return int(charge) in self.model.charges and spin == 0 and (int(np.sum(numbers)) - int(charge)) % 2 == 0

    def make_mole(self, atoms: Atoms, charge: int = 0, spin: int = 0) -> gto.Mole:
        """The PySCF Mole of ``atoms`` in the model's basis (Bohr inside)."""
        return self.layout.make_mole(atoms.numbers, atoms.positions / Bohr, charge=charge, spin=spin)

    def graph_batch(self, molecules: Sequence[Atoms], positions: Sequence[torch.Tensor], moles: Sequence[gto.Mole]):
        """The molecules as one graph on the model's device and dtype; ``positions`` (Bohr) may require grad."""
        return make_batch(self.layout, [torch.as_tensor(a.numbers) for a in molecules], positions,
                          self.network.config.cutoff, baselines(self.network.config, moles, positions)
                          ).to(self.device, self.dtype)

    def network_pass(self, molecules: Sequence[Atoms], moles: Sequence[gto.Mole], energy: bool = False,
                     forces: bool = False) -> NetworkOutput:
        """One batched pass of the model: F, and as asked the energies, forces and (when fitted) uncertainties.

        Forces are ``-dE/dR`` by autograd through the network and, for the half-core and band terms,
        S(R) and H_core(R). Everything is copied to the host once.
        """
        energy = energy or forces
        sizes = [len(a) for a in molecules]
        flat = torch.as_tensor(np.concatenate([a.positions for a in molecules]) / Bohr, dtype=torch.float64)
        flat.requires_grad_(forces)
        gradient = None
        with torch.set_grad_enabled(forces):
            positions = torch.split(flat, sizes)
            out = self.model(self.graph_batch(molecules, positions, moles), moles, positions, energy=energy)
            if forces:  # a lone atom's position is unused: zero force
                (gradient,) = torch.autograd.grad(out.energy.sum(), flat, allow_unused=True, materialize_grads=True)
        return NetworkOutput(
            fock=np.asarray(out.fock.detach().to("cpu", torch.float64)),
            energies=None if out.energy is None else np.asarray(out.energy.detach()),
            forces=np.split(-np.asarray(gradient), np.cumsum(sizes)[:-1]) if forces else None,
            uncertainty=None if out.uncertainty is None else np.asarray(out.uncertainty))

    def predict(self, atoms: Atoms | Sequence[Atoms], charge: int | None = None, spin: int | None = None,
                energy: bool | None = None, forces: bool = False, batch_size: int | None = None,
                domain: str = "refuse", on_uncertain: str | None = None) -> Prediction | list[Prediction]:
        """Predict F and the orbitals, density matrix and overlap derived from it (and energy, forces).

        Args:
            atoms: one ASE Atoms (Angstrom) or a list of molecules of any sizes (packed into batched passes).
            charge, spin: total charge and 2S for every molecule; None (default): each molecule's
                ``atoms.info["charge"]`` / ``atoms.info["spin"]``, else 0, as ``MLWFCalculator`` does.
                Must be a state the model was trained for (checked).
            energy: also the total energy; default: when the model has an energy head.
            forces: also the forces (implies ``energy``; one backward pass through the network).
            batch_size: molecules per network pass (None: all in one pass); bounds the memory of long lists.
            domain: ``"refuse"`` (default): a molecule outside the model's training domain raises
                :class:`~mlwfcalc.domain.OutOfDomainError` before any network work; ``"warn"``: it is
                computed with an :class:`~mlwfcalc.domain.OutOfDomainWarning` (expect large errors).
            on_uncertain: ``"raise"`` (the default with ``domain="refuse"``): a molecule whose uncertainty
                passes the model's hard limit raises :class:`~mlwfcalc.uncertainty.UncertainPredictionError`
                (naming it, the uncertainty and the limit); ``"warn"`` (the default with ``domain="warn"``):
                a warning, the prediction returned.

        Returns:
            A :class:`Prediction` (or a list of them, in input order), numpy arrays in atomic units and
            PySCF AO order.
        """
        single = isinstance(atoms, Atoms)
        molecules = [atoms] if single else list(atoms)
        states = [(int(a.info.get("charge", 0) if charge is None else charge),
                   int(a.info.get("spin", 0) if spin is None else spin)) for a in molecules]
        outside = [self.check_atoms(a, c, s, where=None if single else f"molecule {k}", domain=domain)
                   for k, (a, (c, s)) in enumerate(zip(molecules, states))]
        if batch_size is not None and batch_size < 1:
            raise InputError(f"batch_size must be a positive number of molecules, got {batch_size}")
        step = batch_size or max(len(molecules), 1)
        results = []
        for start in range(0, len(molecules), step):
            results += self.predict_checked(molecules[start:start + step], states[start:start + step], energy, forces)
        policy = on_uncertain or ("raise" if domain == "refuse" else "warn")
        if policy not in ("raise", "warn"):
            raise InputError(f"on_uncertain={on_uncertain!r}: choose 'raise' or 'warn'")
        for k, (result, found) in enumerate(zip(results, outside)):
            result.outside_domain = found
            try:
                check_hard_limit(result.uncertainty, self.uncertainty, self.name,
                                 molecules[k].get_chemical_formula() + ("" if single else f" (molecule {k})"),
                                 molecules[k])
            except UncertainPredictionError as err:
                if policy == "raise":
                    raise
                warnings.warn(str(err), OutOfDomainWarning, stacklevel=2)
        return results[0] if single else results

    def predict_checked(self, molecules: list[Atoms], states: list[tuple[int, int]], energy: bool | None = None,
                        forces: bool = False) -> list[Prediction]:
        """:meth:`predict` for molecules already passed through :meth:`check_atoms` (with their
        ``(charge, spin)``): one network pass, orbitals per molecule, no checks repeated."""
        moles = [self.make_mole(a, c, s) for a, (c, s) in zip(molecules, states)]
        energy = forces or (self.energy_head is not None if energy is None else energy)
        out = self.network_pass(molecules, moles, energy, forces)
        focks = [out.fock[k, :m.nao, :m.nao] for k, m in enumerate(moles)]
        overlaps = [mol.intor("int1e_ovlp") for mol in moles]
        orbitals = _solve_orbitals(focks, overlaps, [mol.nelectron for mol in moles], self.overlap_subspace)
        results = []
        for k, (mol, fock, overlap, (mo_energy, mo_coeff, mo_occ, density, spurious)) in enumerate(
                zip(moles, focks, overlaps, orbitals)):
            if spurious:
                where = f"{molecules[k].get_chemical_formula()}" + (f" (molecule {k})" if len(moles) > 1 else "")
                warnings.warn(f"{where}: occupied orbital(s) {spurious} of {self.name}'s prediction are spurious "
                              f"(made of the basis's near-linear dependencies, where F errors are magnified "
                              f"about 1/s_min = {1 / np.linalg.eigvalsh(overlap)[0]:.0f} times): orbital "
                              "energies, density and dipole are unreliable here even if the F uncertainty is "
                              "small. Label such geometries and fine-tune with the orbital loss "
                              "(orbital_loss_weight), or use a PySCF SCF for this geometry",
                              SpuriousOrbitalWarning, stacklevel=3)
            results.append(Prediction(fock=fock, overlap=overlap, mo_energy=mo_energy, mo_coeff=mo_coeff,
                                      mo_occ=mo_occ, density_matrix=density, mol=mol,
                                      energy=None if out.energies is None else float(out.energies[k]),
                                      forces=None if out.forces is None else out.forces[k],
                                      uncertainty=None if out.uncertainty is None else float(out.uncertainty[k]),
                                      spurious_orbitals=spurious))
        return results


def _solve_orbitals(focks: list[np.ndarray], overlaps: list[np.ndarray], n_electrons: list[int], subspace: float):
    """Per molecule ``(mo_energy, mo_coeff, mo_occ, density_matrix, spurious occupied orbitals)`` (numpy and a
    list), one batched solve per equal size, in the overlap's ``subspace`` (:func:`solve_orbitals`).

    A group holding a nearly singular overlap (or molecules that keep different numbers of directions) falls
    back to one solve per molecule.
    """
    groups: dict[tuple[int, int], list[int]] = {}
    for k, (fock, n) in enumerate(zip(focks, n_electrons)):
        groups.setdefault((len(fock), n), []).append(k)
    out = [None] * len(focks)
    for (_, n), members in groups.items():
        try:
            solved = [(members, solve_orbitals(torch.as_tensor(np.stack([focks[k] for k in members])),
                                               torch.as_tensor(np.stack([overlaps[k] for k in members])), n,
                                               subspace=subspace))]
        except LinearDependencyInBatch:
            solved = []
            for k in members:
                alone = solve_orbitals(torch.as_tensor(focks[k]), torch.as_tensor(overlaps[k]), n, subspace=subspace)
                solved.append(([k], Orbitals(alone.energies[None], alone.coefficients[None], alone.occupations[None],
                                             alone.near_null_weight[None])))
        for part, orbitals in solved:
            arrays = [np.asarray(t) for t in (orbitals.energies, orbitals.coefficients, orbitals.occupations,
                                              orbitals.density_matrix())]
            for i, k in enumerate(part):
                out[k] = (*(a[i] for a in arrays), spurious_occupied(orbitals.near_null_weight[i], n // 2))
    return out


def load_model(name_or_path: str | Path = "auto", device: str | torch.device = "auto",
               dtype: torch.dtype | None = None, compile: bool = False,
               overlap_subspace: float | None = None, atoms: Atoms | None = None) -> HamiltonianPredictor:
    """Load a model directory or shipped model name.

    Args:
        name_or_path: a model directory, the name of a shipped model, or ``"auto"`` (default): the shipped
            model whose training domain covers ``atoms`` (:mod:`mlwfcalc.choice`; the per-molecule model
            before the chemical-space one).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        dtype: network dtype (default: the one it was trained in).
        compile: compile the network's forward with ``torch.compile(fullgraph=True, dynamic=True)``
            (fewer, fused kernels; the first call of each new shape pays the compilation, about a
            minute on a CPU, see docs/benchmarks.md). Needs a working C++ compiler on CPUs.
        overlap_subspace: where its orbitals are solved (:class:`HamiltonianPredictor`); None: the model's choice.
        atoms: the molecule ``"auto"`` chooses for (ASE Atoms); ignored for a named model.

    Raises:
        InputError: ``"auto"`` without ``atoms``; OutOfDomainError: no shipped model covers ``atoms``.
    """
    if is_auto(name_or_path):
        if atoms is None:
            raise InputError("load_model('auto') chooses the model for a molecule: give it, load_model('auto', "
                             "atoms=atoms), or name a model (`mlwfcalc models` lists them)")
        name_or_path = choose_model(atoms.numbers)
    device = resolve_device(device)
    model, path = read_model(name_or_path, device=device, dtype=dtype)
    if compile:
        model.network.fock_and_nodes = torch.compile(model.network.fock_and_nodes, fullgraph=True, dynamic=True)
    return HamiltonianPredictor(model, device, path, overlap_subspace)
