"""ASE's DFT accessors and the matrices and cube files of the calculator's latest result.

:class:`OrbitalAccessors` is mixed into :class:`~mlwfcalc.calculator.MLWFCalculator`: orbital energies and
occupations (eV; one spin channel for a closed shell, two after an open-shell SCF), HOMO and LUMO, the
Kohn-Sham, overlap, density and MO coefficient matrices (atomic units, PySCF AO order), the PySCF Mole, and
density and orbital cube files. Each reads the :class:`~mlwfcalc.predictor.Prediction` of the latest
calculation, computing it first if the atoms changed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.calculators.calculator import PropertyNotImplementedError
from ase.units import Hartree

from .electronic import write_density_cube, write_orbital_cube
from .predictor import Prediction


class OrbitalAccessors:
    """The accessors; the class using it sets ``atoms`` and ``prediction`` and has ASE's ``get_property``."""

    def _current(self) -> Prediction:
        if self.atoms is None:
            raise PropertyNotImplementedError("nothing computed yet: call atoms.get_potential_energy() first")
        self.get_property("energy", self.atoms)
        return self.prediction

    def get_number_of_spins(self) -> int:
        """1, or 2 after an open-shell (UKS) SCF."""
        return 2 if np.ndim(self._current().mo_energy) == 2 else 1

    def get_spin_polarized(self) -> bool:
        return self.get_number_of_spins() == 2

    def get_ibz_k_points(self) -> np.ndarray:
        return np.zeros((1, 3))

    def get_k_point_weights(self) -> np.ndarray:
        return np.ones(1)

    def get_number_of_bands(self) -> int:
        return np.shape(self._current().mo_energy)[-1]

    def get_eigenvalues(self, kpt: int = 0, spin: int = 0) -> np.ndarray:
        """Orbital energies (eV), ascending, of spin channel ``spin`` (0 alpha, 1 beta after a UKS SCF)."""
        self._check_kpt_spin(kpt, spin)
        return np.atleast_2d(self._current().mo_energy)[spin] * Hartree

    def get_occupation_numbers(self, kpt: int = 0, spin: int = 0) -> np.ndarray:
        """2 or 0 per orbital for a closed shell; 1 or 0 per orbital of spin channel ``spin`` after a UKS SCF."""
        self._check_kpt_spin(kpt, spin)
        return np.array(np.atleast_2d(self._current().mo_occ)[spin], dtype=float)

    def get_homo_lumo(self) -> tuple[float, float]:
        """HOMO and LUMO energies, eV (open shell: the highest occupied and lowest empty orbital of either spin)."""
        p = self._current()
        energies, occupied = np.atleast_2d(p.mo_energy), np.atleast_2d(p.mo_occ) > 0
        return float(energies[occupied].max() * Hartree), float(energies[~occupied].min() * Hartree)

    def get_fermi_level(self) -> float:
        """Mid-gap between HOMO and LUMO, eV."""
        return float(np.mean(self.get_homo_lumo()))

    def _check_kpt_spin(self, kpt: int, spin: int) -> None:
        if kpt != 0 or not 0 <= spin < self.get_number_of_spins():
            raise IndexError(f"a molecule has one k-point and {self.get_number_of_spins()} spin channel(s) here "
                             f"(asked kpt={kpt}, spin={spin})")

    # --- matrices and files (atomic units, PySCF AO order) ------------------------------------------

    def get_mole(self):
        """The PySCF Mole (model basis, Bohr inside) that the matrices refer to."""
        return self._current().mol

    def get_density_matrix(self) -> np.ndarray:
        """``(nao, nao)`` AO density matrix (the total, alpha plus beta, after a UKS SCF)."""
        return self._current().density_matrix

    def get_mo_coefficients(self) -> np.ndarray:
        """``(nao, nmo)`` MO coefficients, columns in the order of :meth:`get_eigenvalues` (``(2, nao, nmo)`` after a
        UKS SCF)."""
        return self._current().mo_coeff

    def get_fock_matrix(self) -> np.ndarray:
        """``(nao, nao)`` Kohn-Sham matrix, Hartree (predicted; the SCF one in mode ``"scf"``)."""
        return self._current().fock

    def get_overlap_matrix(self) -> np.ndarray:
        return self._current().overlap

    def write_density_cube(self, path: str | Path, spacing: float = 0.1, margin: float = 5.0) -> None:
        """Electron density as a Gaussian cube file; ``spacing`` and ``margin`` in Bohr."""
        p = self._current()
        write_density_cube(p.mol, p.density_matrix, path, spacing, margin)

    def write_orbital_cube(self, index: int | str, path: str | Path, spacing: float = 0.1,
                           margin: float = 5.0) -> None:
        """Orbital ``index`` (0-based, or ``"homo"`` / ``"lumo"``) as a Gaussian cube file."""
        p = self._current()
        n_occ = int((p.mo_occ > 0).sum())
        named = {"homo": n_occ - 1, "lumo": n_occ}
        if isinstance(index, str):
            if index.lower() not in named:
                raise ValueError(f"orbital {index!r}: give an integer index, 'homo' or 'lumo'")
            index = named[index.lower()]
        write_orbital_cube(p.mol, p.mo_coeff, index, path, spacing, margin)
