"""The level of theory a model predicts and its labels were computed at, and its PySCF SCF factory.

One place for both the labelling package (``mlwfcalc.data``) and the front ends (the calculator,
``mlwfcalc.pyscf``, the command line): method, functional, basis, DFT grid level and SCF tolerances.
Models predict restricted Kohn-Sham (``"RKS"``); the correlated methods (MP2, CCSD, CCSD(T) on a
restricted Hartree-Fock reference) label the high-level sets that models are fine-tuned on.
"""

from __future__ import annotations

from dataclasses import dataclass

from .validation import InputError

#: Settings that must agree for two labelling runs to share one database.
SETTINGS_KEYS = ("method", "xc", "basis", "grid_level", "conv_tol", "max_cycle", "gradient")

#: Settings that records written before they existed lack, with the value those records were made with.
LEGACY_DEFAULTS = {"gradient": "exact"}

#: Restricted Kohn-Sham, then the correlated methods on a restricted Hartree-Fock reference.
METHODS = ("RKS", "MP2", "CCSD", "CCSD(T)")

#: How a Kohn-Sham label's nuclear gradient (its forces) is computed: ``"exact"``, with four-centre
#: Coulomb derivative integrals, or ``"ri-j"``, with the Coulomb term of the gradient density-fitted
#: (PySCF's default JK-fitting basis, def2-universal-jkfit for the def2 bases) at the exactly converged
#: density. The energy, F and dipole are the same either way. ``"ri-j"`` makes the gradient 1.5-3x
#: cheaper and a PBE/def2-SVP label 16-34 % cheaper (more for larger molecules), at about 1 meV/A (MAE)
#: from the exact forces (docs/benchmarks.md, "Labelling throughput").
GRADIENTS = ("exact", "ri-j")


@dataclass(frozen=True)
class LevelOfTheory:
    """A method (restricted Kohn-Sham at functional ``xc``, or MP2/CCSD/CCSD(T) on RHF), a basis
    (spherical AOs), the DFT grid level, the SCF tolerances and how a Kohn-Sham label's forces are
    computed (``gradient``, one of :data:`GRADIENTS`). A correlated method's ``xc`` is ``"hf"``.
    """

    xc: str = "pbe"
    basis: str = "def2-svp"
    grid_level: int = 3
    conv_tol: float = 1e-10
    max_cycle: int = 100
    method: str = "RKS"
    gradient: str = "exact"

    def __post_init__(self):
        method = self.method.upper()
        if method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "xc", "hf" if self.correlated else self.xc.lower())
        object.__setattr__(self, "basis", self.basis.lower().replace(" ", ""))
        if self.gradient not in GRADIENTS:
            raise ValueError(f"unknown gradient {self.gradient!r}; choose one of {', '.join(GRADIENTS)}")
        if self.correlated and self.gradient != "exact":
            raise ValueError(f"gradient {self.gradient!r} applies to Kohn-Sham labels; {method} forces are "
                             "computed exactly: drop it")

    @property
    def correlated(self) -> bool:
        """True for MP2, CCSD and CCSD(T): labels with energies, forces and dipoles but no Kohn-Sham matrix."""
        return self.method != "RKS"

    @property
    def name(self) -> str:
        """``"PBE/def2-svp"`` or ``"CCSD(T)/cc-pvtz"``."""
        return f"{self.method if self.correlated else self.xc.upper()}/{self.basis}"

    def make_scf(self, mol):
        """A quiet PySCF SCF object for ``mol`` at these settings: RKS (functional, grid level; UKS for an
        open-shell ``mol``, ``mol.spin`` > 0), or the RHF reference of a correlated method; SCF tolerances as set."""
        from pyscf import dft, scf

        if self.correlated:
            mf = scf.RHF(mol)
            mf.conv_tol, mf.max_cycle, mf.verbose = self.conv_tol, self.max_cycle, 0
            return mf
        mf = (dft.UKS if mol.spin else dft.RKS)(mol, xc=self.xc)
        mf.grids.level = self.grid_level
        mf.conv_tol = self.conv_tol
        mf.max_cycle = self.max_cycle
        mf.verbose = 0
        return mf

    def nuclear_gradient(self, mf):
        """The nuclear gradient (Hartree/Bohr, shape ``(n_atoms, 3)``) of the converged Kohn-Sham ``mf``,
        computed as ``gradient`` says."""
        import numpy as np

        if self.gradient == "ri-j":
            mf = mf.density_fit()  # carries the converged orbitals; only the gradient's Coulomb term is fitted
        return np.asarray(mf.nuc_grad_method().set(verbose=0).kernel())

    @classmethod
    def from_name(cls, name: str) -> "LevelOfTheory":
        """The level a :attr:`name` such as ``"CCSD(T)/cc-pvtz"`` or ``"PBE/def2-svp"`` stands for (other settings
        at their defaults): a transfer model's energy level, recorded by name."""
        method, _, basis = name.partition("/")
        if method.upper() in METHODS[1:]:
            return cls(method=method.upper(), basis=basis)
        return cls(xc=method.lower(), basis=basis)

    @classmethod
    def from_metadata(cls, metadata: dict) -> "LevelOfTheory":
        """The settings recorded in a database's or archive's metadata (older records: :data:`LEGACY_DEFAULTS`);
        InputError naming the settings it lacks."""
        recorded = {**LEGACY_DEFAULTS, **metadata}
        missing = [k for k in SETTINGS_KEYS if k not in recorded]
        if missing:
            raise InputError(f"labelling settings without {', '.join(missing)}: not metadata written by mlwfcalc")
        return cls(**{k: recorded[k] for k in SETTINGS_KEYS})
