"""Training samples (torch tensors, atomic units) from a label database, and reproducible splits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from ase.units import Bohr, Hartree

from ..validation import InputError
from .database import LabelDatabase


@dataclass
class Sample:
    """One labelled molecule in atomic units (float64).

    Attributes:
        numbers: ``(n_atoms,)`` atomic numbers.
        positions: ``(n_atoms, 3)`` Bohr.
        fock: ``(nao, nao)`` Hartree, PySCF AO order; None for correlated labels (MP2, CCSD, CCSD(T)).
        energy: ``()`` total energy, Hartree.
        forces: ``(n_atoms, 3)`` Hartree/Bohr; None for a frame labelled without forces (``--no-forces``).
        dipole: ``(3,)`` e*Bohr about the origin: of the converged SCF density, or the correlated
            method's relaxed (finite-field) dipole.
        key: the geometry key in the database.
        molecule: the molecule it is a conformer of (SMILES), or "" when the labels do not say.
    """

    numbers: torch.Tensor
    positions: torch.Tensor
    fock: torch.Tensor | None
    energy: torch.Tensor
    forces: torch.Tensor | None
    dipole: torch.Tensor
    key: str
    molecule: str = ""


class LabelledDataset(torch.utils.data.Dataset):
    """All converged rows of a label database, loaded into memory in a deterministic order.

    Failed rows are never included. ``dataset.settings`` holds the PySCF settings (method, basis, xc, ...).
    ``kohn_sham=True`` (training a Hamiltonian, scoring F) refuses correlated labels, which carry no F.
    """

    def __init__(self, path: str | Path, kohn_sham: bool = True):
        db = LabelDatabase(path)
        self.settings = db.settings
        self.path = Path(path)
        if kohn_sham and self.settings.correlated:
            raise InputError(f"{path} holds {self.settings.name} labels (energies, forces, dipoles; no Kohn-Sham "
                             "matrix F), which cannot train or score a Hamiltonian; fine-tune a model on them with "
                             "`mlwfcalc train --transfer`")
        self.samples = [self._sample(row) for row in db.rows("ok")]
        if not self.samples:
            raise InputError(f"{path} holds no converged geometry to train on")

    @staticmethod
    def _sample(row) -> Sample:
        f64 = torch.float64
        return Sample(numbers=torch.tensor(row.numbers, dtype=torch.long),
                      positions=torch.as_tensor(row.positions / Bohr, dtype=f64),
                      fock=torch.tensor(row.data["fock"], dtype=f64) if "fock" in row.data else None,
                      energy=torch.tensor(row.energy / Hartree, dtype=f64),
                      forces=(torch.as_tensor(row.forces * Bohr / Hartree, dtype=f64)
                              if row.get("forces_labelled", True) and row.get("forces") is not None else None),
                      dipole=torch.tensor(row.data["dipole"], dtype=f64),
                      key=row.geometry_key, molecule=str(row.data.get("smiles", "")))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]

    @property
    def elements(self) -> list[int]:
        return sorted({int(z) for s in self.samples for z in s.numbers})

    @property
    def fingerprint(self) -> str:
        """SHA-256 (16 hex digits) of the samples' geometry keys in order: the same labels give the same
        splits, so a run or a domain fit can tell whether its database changed under it."""
        import hashlib

        return hashlib.sha256("\n".join(s.key for s in self.samples).encode()).hexdigest()[:16]

    def split(self, sizes: Sequence[float | int], seed: int = 0) -> list[np.ndarray]:
        """Reproducible split of the samples (:func:`split_indices`), molecule-disjoint when they know their
        molecule: then ``sizes`` count molecules (or fractions of them), and every conformer of a molecule
        lands in the same part, so validation and test molecules never appear in training in any conformer.
        Samples of unknown molecule (water or ethanol MD, labelled without SMILES) are split one by one.
        The molecules are permuted in sorted order, so the split depends on which molecules the labels
        hold, not on the order of their rows (two databases of the same molecules split alike).
        """
        if not any(s.molecule for s in self.samples):
            return split_indices(len(self.samples), sizes, seed)
        molecules = [s.molecule or f"sample {k}" for k, s in enumerate(self.samples)]
        names = sorted(set(molecules))
        members = {name: [] for name in names}
        for index, name in enumerate(molecules):
            members[name].append(index)
        return [np.sort(np.concatenate([members[names[k]] for k in part] or [np.zeros(0, dtype=int)])).astype(int)
                for part in split_indices(len(names), sizes, seed)]


    def split_by_molecules(self, names, where: str = "the list") -> tuple[np.ndarray, np.ndarray]:
        """``(training, validation)`` sample indices, validation = every frame of a molecule in ``names`` (SMILES,
        e.g. a model's recorded ``val_molecules``; :func:`read_molecule_names` reads a file of them), training = the
        rest: a fine-tune on more labels keeps its starting model's validation molecules. ``where`` names the list
        in the error when no frame is of one of them."""
        names = set(names)
        chosen = np.array([s.molecule in names for s in self.samples])
        if not chosen.any():
            raise InputError(f"no frame of these labels is of a molecule in {where}: are they the same labels' SMILES?")
        return np.flatnonzero(~chosen), np.flatnonzero(chosen)

    def molecules_of(self, indices: Sequence[int]) -> list[str]:
        """The sorted molecules (SMILES) of the samples ``indices``; empty when the labels name none."""
        return sorted({self.samples[int(i)].molecule for i in indices} - {""})


def read_molecule_names(path: str | Path) -> list[str]:
    """The SMILES of a JSON list file (``--validation-molecules``); InputError naming the file when it is not one."""
    import json

    try:
        names = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read validation molecules {path} ({err}): give a JSON list of SMILES") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InputError(f"validation molecules {path}: give a JSON list of SMILES strings")
    return names


def split_indices(n: int, sizes: Sequence[float | int], seed: int = 0) -> list[np.ndarray]:
    """Reproducible random split of ``range(n)``.

    Args:
        n: number of samples.
        sizes: one entry per part, each a count (int) or a fraction (float in (0, 1]); the last
            part may be ``-1`` for "all the rest".
        seed: the same seed and ``n`` always give the same parts.

    Returns:
        Sorted index arrays, one per part, disjoint.
    """
    counts = [int(round(s * n)) if isinstance(s, float) else int(s) for s in sizes]
    if counts and counts[-1] == -1:
        counts[-1] = n - sum(counts[:-1])
    if any(c < 0 for c in counts) or sum(counts) > n:
        raise InputError(f"split sizes {list(sizes)} do not fit {n} samples")
    order = np.random.default_rng(seed).permutation(n)
    parts, start = [], 0
    for c in counts:
        parts.append(np.sort(order[start:start + c]))
        start += c
    return parts
