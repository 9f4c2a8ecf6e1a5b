"""The level of theory a model predicts and its labels were computed at, and its PySCF SCF factory.

One place for both the labelling package (``mlwfcalc.data``) and the front ends (the calculator,
``mlwfcalc.pyscf``, the command line): method, functional, basis, DFT grid level and SCF tolerances.
Models predict restricted Kohn-Sham (``"RKS"``); the correlated methods (MP2, CCSD, CCSD(T) on a
restricted Hartree-Fock reference) label the high-level sets that models are fine-tuned on.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Settings that must agree for two labelling runs to share one database.
SETTINGS_KEYS = ("method", "xc", "basis", "grid_level", "conv_tol", "max_cycle")

#: Restricted Kohn-Sham, then the correlated methods on a restricted Hartree-Fock reference.
METHODS = ("RKS", "MP2", "CCSD", "CCSD(T)")


@dataclass(frozen=True)
class LevelOfTheory:
    """A method (restricted Kohn-Sham at functional ``xc``, or MP2/CCSD/CCSD(T) on RHF), a basis
    (spherical AOs), the DFT grid level and the SCF tolerances. A correlated method's ``xc`` is ``"hf"``.
    """

    xc: str = "pbe"
    basis: str = "def2-svp"
    grid_level: int = 3
    conv_tol: float = 1e-10
    max_cycle: int = 100
    method: str = "RKS"

    def __post_init__(self):
        method = self.method.upper()
        if method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "xc", "hf" if self.correlated else self.xc.lower())
        object.__setattr__(self, "basis", self.basis.lower().replace(" ", ""))

    @property
    def correlated(self) -> bool:
        """True for MP2, CCSD and CCSD(T): labels with energies, forces and dipoles but no Kohn-Sham matrix."""
        return self.method != "RKS"

    @property
    def name(self) -> str:
        """``"PBE/def2-svp"`` or ``"CCSD(T)/cc-pvtz"``."""
        return f"{self.method if self.correlated else self.xc.upper()}/{self.basis}"

    def make_scf(self, mol):
        """A quiet PySCF SCF object for ``mol`` at these settings: RKS (functional, grid level), or the RHF
        reference of a correlated method; SCF tolerances as set."""
        from pyscf import dft, scf

        if self.correlated:
            mf = scf.RHF(mol)
            mf.conv_tol, mf.max_cycle, mf.verbose = self.conv_tol, self.max_cycle, 0
            return mf
        mf = dft.RKS(mol, xc=self.xc)
        mf.grids.level = self.grid_level
        mf.conv_tol = self.conv_tol
        mf.max_cycle = self.max_cycle
        mf.verbose = 0
        return mf

    @classmethod
    def from_metadata(cls, metadata: dict) -> "LevelOfTheory":
        return cls(**{k: metadata[k] for k in SETTINGS_KEYS})
