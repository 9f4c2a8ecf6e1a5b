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

from .electronic import solve_orbitals
from .io import load_network
from .nn.graph import make_batch
from .nn.model import HamiltonianModel
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
    """

    fock: np.ndarray
    overlap: np.ndarray
    mo_energy: np.ndarray
    mo_coeff: np.ndarray
    mo_occ: np.ndarray
    density_matrix: np.ndarray
    mol: gto.Mole

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
    """

    def __init__(self, network: HamiltonianModel, config: dict, device: torch.device):
        self.network = network
        self.config = config
        self.device = device
        self.layout = network.layout
        self.basis = network.config.basis
        self.functional = config.get("functional", "pbe")
        self.elements = list(network.config.elements)

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

    def predict_fock(self, molecules: Sequence[Atoms], moles: Sequence[gto.Mole] | None = None) -> list[torch.Tensor]:
        """Predicted F ``(nao, nao)`` per molecule, one batched forward pass, on ``self.device``."""
        hcore = None
        if self.network.config.target == "fock-hcore":
            moles = moles or [self.make_mole(a) for a in molecules]
            hcore = [torch.as_tensor(m.intor("int1e_kin") + m.intor("int1e_nuc")) for m in moles]
        batch = make_batch(self.layout, [torch.as_tensor(a.numbers) for a in molecules],
                           [torch.as_tensor(a.positions / Bohr) for a in molecules], self.network.config.cutoff,
                           hcore).to(self.device, self.dtype)
        with torch.no_grad():
            fock = self.network(batch)
        return [f[:n, :n] for f, n in zip(fock, batch.nao.tolist())]

    def predict(self, atoms: Atoms | Sequence[Atoms], charge: int = 0, spin: int = 0) -> Prediction | list[Prediction]:
        """Predict F and the orbitals, density matrix and overlap derived from it.

        Args:
            atoms: one ASE Atoms (Angstrom) or a list (predicted in one batched pass).

        Returns:
            A :class:`Prediction` (or a list of them), numpy arrays in atomic units and PySCF AO order.
        """
        single = isinstance(atoms, Atoms)
        molecules = [atoms] if single else list(atoms)
        for k, a in enumerate(molecules):
            self.check_atoms(a, charge, spin, where=None if single else f"molecule {k}")
        moles = [self.make_mole(a, charge, spin) for a in molecules]
        focks = self.predict_fock(molecules, moles)
        results = []
        for mol, fock in zip(moles, focks):
            fock = fock.detach().to("cpu", torch.float64)
            overlap = torch.as_tensor(mol.intor("int1e_ovlp"))
            orbitals = solve_orbitals(fock, overlap, mol.nelectron)
            results.append(Prediction(fock=fock.numpy(), overlap=overlap.numpy(),
                                      mo_energy=orbitals.energies.numpy(), mo_coeff=orbitals.coefficients.numpy(),
                                      mo_occ=orbitals.occupations.numpy(),
                                      density_matrix=orbitals.density_matrix().numpy(), mol=mol))
        return results[0] if single else results


def load_model(name_or_path: str | Path, device: str | torch.device = "auto",
               dtype: torch.dtype | None = None) -> HamiltonianPredictor:
    """Load a model directory or shipped model name; ``device`` is ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``."""
    device = resolve_device(device)
    network, config = load_network(name_or_path, device=device, dtype=dtype)
    return HamiltonianPredictor(network, config, device)
