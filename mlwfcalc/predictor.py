"""The Python surface every front end uses: ``load_model(...)`` and ``model.predict(atoms)``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from ase import Atoms
from ase.units import Bohr
from pyscf import gto

from .electronic import LinearDependencyInBatch, Orbitals, solve_orbitals
from .energy import EnergyHead, core_hamiltonian, reference_terms
from .io import load_energy_head, load_network, resolve_model_path
from .nn.graph import make_batch
from .nn.model import HamiltonianModel
from .theory import LevelOfTheory
from .validation import InputError, check_closed_shell, check_elements, check_not_periodic, check_positions


@dataclass
class Prediction:
    """What the model says about one molecule (numpy, atomic units, PySCF AO order).

    Attributes:
        fock: ``(nao, nao)`` predicted Kohn-Sham matrix, Hartree.
        overlap: ``(nao, nao)`` exact AO overlap from PySCF.
        mo_energy: ``(nmo,)`` orbital energies, Hartree.
        mo_coeff: ``(nao, nmo)`` MO coefficients (columns).
        mo_occ: ``(nmo,)`` occupations (2 or 0).
        density_matrix: ``(nao, nao)`` AO density matrix P.
        mol: the PySCF Mole these matrices refer to.
        energy: total energy (Hartree) from the energy head, or None (no head, or not asked).
        forces: ``(n_atoms, 3)`` Hartree/Bohr, ``-dE/dR``, or None (not asked).
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

    @property
    def homo_lumo_gap(self) -> float:
        """Hartree."""
        n = int((self.mo_occ > 0).sum())
        return float(self.mo_energy[n] - self.mo_energy[n - 1])


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU; ``"cuda"`` without a GPU is a clear error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device} requested but torch sees no CUDA GPU; use device='cpu' or 'auto'")
    return device


class HamiltonianPredictor:
    """A loaded model: network + basis + functional, ready to predict for ASE Atoms.

    Args:
        network: the trained :class:`HamiltonianModel`.
        config: the model's ``config.json`` content.
        device: where the network runs.
        energy_head: the fitted :class:`~mlwfcalc.energy.EnergyHead`, or None (no energies from the model).
        path: the model directory it was loaded from, if any.
    """

    def __init__(self, network: HamiltonianModel, config: dict, device: torch.device,
                 energy_head: EnergyHead | None = None, path: Path | None = None):
        self.network = network
        self.config = config
        self.device = device
        self.energy_head = energy_head
        self.path = path
        self.layout = network.layout
        self.basis = network.config.basis
        self.functional = config.get("functional", "pbe")
        #: the level of theory of the predicted F and of the training labels (its SCF factory: ``make_scf``)
        self.theory = LevelOfTheory(xc=self.functional, basis=self.basis,
                                    grid_level=int(config.get("training", {}).get("grid_level", 3)))
        self.elements = list(network.config.elements)
        if energy_head is not None:
            head = energy_head.config
            width = network.invariant_width(head.features)
            if head.num_scalars != width or set(head.elements) != set(self.elements):
                raise InputError(f"model {path or ''}: the energy head (elements {head.elements}, {head.num_scalars} "
                                 f"{head.features} features) does not fit the network (elements {self.elements}, "
                                 f"{width} {head.features} features); refit it with `mlwfcalc train-energy`")

    def head_features(self, nodes: torch.Tensor, features: str) -> torch.Tensor:
        """The energy head's inputs ``(N, C)`` from the network's node features ``(N, K, C)``.

        ``features`` is ``"scalars"`` or ``"invariants"`` (:meth:`~mlwfcalc.nn.model.HamiltonianModel.invariants`).
        """
        return self.network.invariants(nodes, features)

    def __repr__(self) -> str:
        return (f"HamiltonianPredictor(basis={self.basis!r}, functional={self.functional!r}, "
                f"elements={self.config.get('elements')}, device={self.device})")

    @property
    def dtype(self) -> torch.dtype:
        return next(self.network.parameters()).dtype

    def check_atoms(self, atoms: Atoms, charge: int = 0, spin: int = 0, where: str | None = None) -> None:
        """Refuse what the model cannot answer: pbc, bad coordinates, unknown elements, not neutral closed shell."""
        check_not_periodic(atoms.pbc, where)
        check_positions(atoms.positions, where)
        check_elements(atoms.numbers, self.elements, where, what=f"this model (basis {self.basis})")
        check_closed_shell(atoms.numbers, charge, spin, where, allowed_charges=self.config.get("charges", [0]))

    def make_mole(self, atoms: Atoms, charge: int = 0, spin: int = 0) -> gto.Mole:
        """The PySCF Mole of ``atoms`` in the model's basis (Bohr inside)."""
        return self.layout.make_mole(atoms.numbers, atoms.positions / Bohr, charge=charge, spin=spin)

    def graph_batch(self, molecules: Sequence[Atoms], positions: Sequence[torch.Tensor], moles: Sequence[gto.Mole]):
        """The molecules as one graph on the model's device and dtype; ``positions`` (Bohr) may require grad."""
        hcore = None
        if self.network.config.target == "fock-hcore":  # differentiable: forces see dH_core/dR
            hcore = [core_hamiltonian(m, p.to(torch.float64)) for m, p in zip(moles, positions)]
        return make_batch(self.layout, [torch.as_tensor(a.numbers) for a in molecules], positions,
                          self.network.config.cutoff, hcore).to(self.device, self.dtype)

    def predict_fock(self, molecules: Sequence[Atoms], moles: Sequence[gto.Mole] | None = None) -> list[torch.Tensor]:
        """Predicted F ``(nao, nao)`` per molecule (float64, host): one forward pass, one device-to-host copy."""
        moles = moles or [self.make_mole(a) for a in molecules]
        positions = [torch.as_tensor(a.positions / Bohr) for a in molecules]
        with torch.no_grad():
            fock = self.network(self.graph_batch(molecules, positions, moles)).to("cpu", torch.float64)
        return [f[:m.nao, :m.nao] for f, m in zip(fock, moles)]

    def fock_and_energy(self, molecules: Sequence[Atoms], moles: Sequence[gto.Mole], forces: bool = False
                        ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray] | None]:
        """One batched pass: F ``(B, nmax, nmax)`` (float64, zero padded), energies ``(B,)`` Hartree, forces or None.

        Forces ``(n_k, 3)`` Hartree/Bohr per molecule are ``-dE/dR`` by autograd through the network and,
        for the half-core and band terms, S(R) and H_core(R). Needs an energy head. Returned as numpy,
        converted once for the whole batch.
        """
        if self.energy_head is None:
            raise InputError(f"model {self.path or ''} has no energy head: fit one with `mlwfcalc train-energy`, "
                             "or use the variational DFT energy (mode='variational')")
        sizes = [len(a) for a in molecules]
        flat = torch.as_tensor(np.concatenate([a.positions for a in molecules]) / Bohr, dtype=torch.float64)
        flat.requires_grad_(forces)
        with torch.set_grad_enabled(forces):
            positions = torch.split(flat, sizes)
            batch = self.graph_batch(molecules, positions, moles)
            fock, nodes = self.network.fock_and_nodes(batch)
            atomic = self.energy_head(self.head_features(nodes, self.energy_head.config.features),
                                      batch.numbers).to("cpu")
            energies = torch.zeros(len(moles), dtype=torch.float64).index_add(0, batch.molecule.cpu(), atomic)
            term = self.energy_head.config.term
            if term != "none":
                focks = [f[:m.nao, :m.nao].to("cpu", torch.float64) for f, m in zip(fock, moles)]
                energies = energies + torch.stack([reference_terms(term, m, torch.as_tensor(a.numbers), p, f)
                                                   for a, m, p, f in zip(molecules, moles, positions, focks)])
            gradient = None
            if forces:  # a lone atom's position is unused: zero force
                (gradient,) = torch.autograd.grad(energies.sum(), flat, allow_unused=True, materialize_grads=True)
        force_list = np.split(-np.asarray(gradient), np.cumsum(sizes)[:-1]) if forces else None
        return np.asarray(fock.detach().to("cpu", torch.float64)), np.asarray(energies.detach()), force_list

    def predict(self, atoms: Atoms | Sequence[Atoms], charge: int | None = None, spin: int | None = None,
                energy: bool | None = None, forces: bool = False,
                batch_size: int | None = None) -> Prediction | list[Prediction]:
        """Predict F and the orbitals, density matrix and overlap derived from it (and energy, forces).

        Args:
            atoms: one ASE Atoms (Angstrom) or a list of molecules of any sizes (packed into batched passes).
            charge, spin: total charge and 2S for every molecule; None (default): each molecule's
                ``atoms.info["charge"]`` / ``atoms.info["spin"]``, else 0, as ``MLWFCalculator`` does.
                Must be a state the model was trained for (checked).
            energy: also the total energy; default: when the model has an energy head.
            forces: also the forces (implies ``energy``; one backward pass through the network).
            batch_size: molecules per network pass (None: all in one pass); bounds the memory of long lists.

        Returns:
            A :class:`Prediction` (or a list of them, in input order), numpy arrays in atomic units and
            PySCF AO order.
        """
        single = isinstance(atoms, Atoms)
        molecules = [atoms] if single else list(atoms)
        states = [(int(a.info.get("charge", 0) if charge is None else charge),
                   int(a.info.get("spin", 0) if spin is None else spin)) for a in molecules]
        for k, (a, (c, s)) in enumerate(zip(molecules, states)):
            self.check_atoms(a, c, s, where=None if single else f"molecule {k}")
        if batch_size is not None and batch_size < 1:
            raise InputError(f"batch_size must be a positive number of molecules, got {batch_size}")
        step = batch_size or max(len(molecules), 1)
        results = []
        for start in range(0, len(molecules), step):
            results += self._predict_batch(molecules[start:start + step], states[start:start + step], energy, forces)
        return results[0] if single else results

    def _predict_batch(self, molecules: list[Atoms], states: list[tuple[int, int]], energy: bool | None,
                       forces: bool) -> list[Prediction]:
        """One network pass for checked ``molecules`` with their ``(charge, spin)``; orbitals per molecule."""
        moles = [self.make_mole(a, c, s) for a, (c, s) in zip(molecules, states)]
        energy = forces or (self.energy_head is not None if energy is None else energy)
        if energy:
            fock, energies, gradients = self.fock_and_energy(molecules, moles, forces)
            focks = [fock[k, :m.nao, :m.nao] for k, m in enumerate(moles)]
        else:
            focks = [np.asarray(f) for f in self.predict_fock(molecules, moles)]
            energies, gradients = None, None
        overlaps = [mol.intor("int1e_ovlp") for mol in moles]
        orbitals = _solve_orbitals(focks, overlaps, [mol.nelectron for mol in moles])
        results = []
        for k, (mol, fock, overlap, (mo_energy, mo_coeff, mo_occ, density)) in enumerate(
                zip(moles, focks, overlaps, orbitals)):
            results.append(Prediction(fock=fock, overlap=overlap, mo_energy=mo_energy, mo_coeff=mo_coeff,
                                      mo_occ=mo_occ, density_matrix=density, mol=mol,
                                      energy=float(energies[k]) if energies is not None else None,
                                      forces=gradients[k] if gradients is not None else None))
        return results


def _solve_orbitals(focks: list[np.ndarray], overlaps: list[np.ndarray], n_electrons: list[int]):
    """Per molecule ``(mo_energy, mo_coeff, mo_occ, density_matrix)`` (numpy), one batched solve per equal size.

    A group holding a nearly singular overlap falls back to one solve per molecule (with the warning).
    """
    groups: dict[tuple[int, int], list[int]] = {}
    for k, (fock, n) in enumerate(zip(focks, n_electrons)):
        groups.setdefault((len(fock), n), []).append(k)
    out = [None] * len(focks)
    for (_, n), members in groups.items():
        try:
            solved = [(members, solve_orbitals(torch.as_tensor(np.stack([focks[k] for k in members])),
                                               torch.as_tensor(np.stack([overlaps[k] for k in members])), n))]
        except LinearDependencyInBatch:
            solved = []
            for k in members:
                alone = solve_orbitals(torch.as_tensor(focks[k]), torch.as_tensor(overlaps[k]), n)
                solved.append(([k], Orbitals(alone.energies[None], alone.coefficients[None], alone.occupations[None])))
        for part, orbitals in solved:
            arrays = [np.asarray(t) for t in (orbitals.energies, orbitals.coefficients, orbitals.occupations,
                                              orbitals.density_matrix())]
            for i, k in enumerate(part):
                out[k] = tuple(a[i] for a in arrays)
    return out


def load_model(name_or_path: str | Path, device: str | torch.device = "auto",
               dtype: torch.dtype | None = None, compile: bool = False) -> HamiltonianPredictor:
    """Load a model directory or shipped model name.

    Args:
        name_or_path: a model directory or the name of a shipped model.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        dtype: network dtype (default: the one it was trained in).
        compile: compile the network's forward with ``torch.compile(fullgraph=True, dynamic=True)``
            (fewer, fused kernels; the first call of each new shape pays the compilation, about a
            minute on a CPU, see docs/benchmarks.md). Needs a working C++ compiler on CPUs.
    """
    device = resolve_device(device)
    path = resolve_model_path(name_or_path)
    network, config = load_network(path, device=device, dtype=dtype)
    if compile:
        network.fock_and_nodes = torch.compile(network.fock_and_nodes, fullgraph=True, dynamic=True)
    return HamiltonianPredictor(network, config, device, load_energy_head(path, config, device), path)
