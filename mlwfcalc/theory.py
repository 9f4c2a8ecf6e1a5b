"""The level of theory a model predicts and its labels were computed at, and its PySCF SCF factory.

One place for both the labelling package (``mlwfcalc.data``) and the front ends (the calculator,
``mlwfcalc.pyscf``, the command line): functional, basis, DFT grid level and SCF tolerances.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Settings that must agree for two labelling runs to share one database.
SETTINGS_KEYS = ("method", "xc", "basis", "grid_level", "conv_tol", "max_cycle")


@dataclass(frozen=True)
class LevelOfTheory:
    """Restricted Kohn-Sham at one functional, basis (spherical AOs) and grid level, with SCF tolerances."""

    xc: str = "pbe"
    basis: str = "def2-svp"
    grid_level: int = 3
    conv_tol: float = 1e-10
    max_cycle: int = 100
    method: str = "RKS"

    def __post_init__(self):
        object.__setattr__(self, "xc", self.xc.lower())
        object.__setattr__(self, "basis", self.basis.lower().replace(" ", ""))

    def make_scf(self, mol):
        """A quiet PySCF RKS object for ``mol`` at these settings (functional, grid level, tolerances)."""
        from pyscf import dft

        mf = dft.RKS(mol, xc=self.xc)
        mf.grids.level = self.grid_level
        mf.conv_tol = self.conv_tol
        mf.max_cycle = self.max_cycle
        mf.verbose = 0
        return mf

    @classmethod
    def from_metadata(cls, metadata: dict) -> "LevelOfTheory":
        return cls(**{k: metadata[k] for k in SETTINGS_KEYS})
