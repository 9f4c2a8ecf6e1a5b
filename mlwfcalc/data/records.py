"""What a label row is made of: the content key of a geometry, the frame to label, and what labelling it
produced. The labeller (:mod:`mlwfcalc.data.labelling`) makes them, the database
(:mod:`mlwfcalc.data.database`) and the archives (:mod:`mlwfcalc.data.archive`) write and read them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np


def geometry_key(numbers: np.ndarray, positions: np.ndarray) -> str:
    """Content key of a geometry: ``"g"`` + SHA-1 of the atomic numbers and positions rounded to 1e-6 A.

    The leading letter keeps ASE's database from reading a key such as ``49e17...`` as a number
    (which it refuses to store as a string).
    """
    digest = hashlib.sha1(np.asarray(numbers, dtype=np.int64).tobytes())
    digest.update(np.round(np.asarray(positions, dtype=float), 6).astype(np.float64).tobytes())
    return "g" + digest.hexdigest()[:19]


@dataclass(frozen=True)
class Frame:
    """One geometry to label. ``where`` names it in messages (``frame 3 of water.xyz``)."""

    source: str
    index: int
    numbers: np.ndarray
    positions: np.ndarray  # Angstrom
    charge: int = 0
    spin: int = 0  # 2S
    pbc: tuple[bool, bool, bool] = (False, False, False)
    molecule: str = ""  # the molecule's identity (its SMILES, from ``mlwfcalc molecules``); "" when unknown

    @property
    def where(self) -> str:
        return f"frame {self.index} of {self.source}"

    @property
    def key(self) -> str:
        return geometry_key(self.numbers, self.positions)


@dataclass
class LabelResult:
    """What one PySCF run produced (atomic units). ``reason`` is set when it failed."""

    frame: Frame
    converged: bool
    cycles: int = 0
    seconds: float = 0.0
    energy: float | None = None  # Hartree
    forces: np.ndarray | None = None  # Hartree/Bohr, (n_atoms, 3); None when labelled without forces
    fock: np.ndarray | None = None  # Hartree, (nao, nao), PySCF AO order; None for correlated methods
    dipole: np.ndarray | None = None  # e*Bohr, origin 0
    reason: str | None = None
    guess: str = "minao"  # where the SCF started: "minao", or "model NAME" (:func:`label_frame`)
