"""Orbital layout of an AO basis and the maps between PySCF's AO order and the model's irreps.

This is the only module that knows the ordering conventions. Everything else asks it.

Conventions (checked by ``tests/test_basis.py`` on overlaps and Kohn-Sham matrices):

* PySCF spherical AOs are grouped per atom, per shell, per contraction; within a shell
  p is ``(px, py, pz)`` and l >= 2 is m = -l..l.
* The model works in the *model frame*: Cartesian vectors permuted to ``(y, z, x)``.
  In that frame e3nn's spherical harmonics and Wigner matrices coincide with PySCF's
  real spherical harmonics for l >= 2 with no sign change, and with PySCF's p shells after
  reordering them to ``(py, pz, px)`` (index ``[1, 2, 0]``).
* Parity is ``(-1)**l`` (p and f are odd), so inversion is an exact symmetry too.

With these, for a rotation or improper rotation ``R`` acting on Cartesian positions,
``S(R x) = D(R) S(x) D(R)^T`` where ``D = BasisLayout.wigner_D(numbers, R)`` is in PySCF order.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np
import torch
from ase.data import atomic_numbers, chemical_symbols
from e3nn import o3
from pyscf import gto

from .validation import InputError

#: Cartesian (x, y, z) -> model frame (y, z, x).
MODEL_FRAME_INDEX = (1, 2, 0)
#: Within a PySCF p shell, the irreps (m = -1, 0, 1) order is PySCF's (px, py, pz) taken at this index.
P_SHELL_INDEX = (1, 2, 0)
#: Permutation matrix P with ``v_model = P @ v_cartesian``.
MODEL_FRAME_MATRIX = np.eye(3)[list(MODEL_FRAME_INDEX)]


def to_model_frame(vectors):
    """Permute the last axis of Cartesian vectors ``(..., 3)`` to the model frame ``(y, z, x)``."""
    return vectors[..., list(MODEL_FRAME_INDEX)]


def rotation_to_model_frame(rotation: np.ndarray) -> np.ndarray:
    """A Cartesian (improper) rotation matrix ``(3, 3)`` expressed in the model frame: ``P R P^T``."""
    return MODEL_FRAME_MATRIX @ np.asarray(rotation) @ MODEL_FRAME_MATRIX.T


def normalise_basis_name(basis: str) -> str:
    """Canonical spelling of a basis name (lower case, no spaces, dashes and underscores kept)."""
    return str(basis).strip().lower().replace(" ", "")


def element_number(element: int | str) -> int:
    """Atomic number of ``element`` given as a number or a symbol; raises InputError if unknown."""
    if isinstance(element, (int, np.integer)):
        if 0 < int(element) < len(chemical_symbols):
            return int(element)
    elif str(element).capitalize() in atomic_numbers and str(element) != "X":
        return atomic_numbers[str(element).capitalize()]
    raise InputError(f"unknown element {element!r}: give an atomic number or a chemical symbol")


@contextmanager
def float64_default():
    """Run a block with torch's default dtype set to float64.

    e3nn builds Wigner matrices and Clebsch-Gordan tables in the default dtype; built in float32
    they break equivariance at the 1e-7 level. Build in float64, then cast.
    """
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


@dataclass(frozen=True)
class ElementLayout:
    """Orbital layout of one element in one basis.

    Attributes:
        number: atomic number Z.
        shells: angular momentum l of each contracted shell, in PySCF AO order.
    """

    number: int
    shells: tuple[int, ...]

    @property
    def symbol(self) -> str:
        return chemical_symbols[self.number]

    @property
    def nao(self) -> int:
        """Number of spherical AOs on one atom of this element."""
        return sum(2 * l + 1 for l in self.shells)

    @property
    def irreps(self) -> o3.Irreps:
        """The atom's AOs as e3nn irreps, one ``1x l p`` per shell in PySCF shell order."""
        return o3.Irreps([(1, (l, (-1) ** l)) for l in self.shells])

    @property
    def pyscf_to_irreps(self) -> np.ndarray:
        """Index array ``(nao,)``: a vector in irreps order is ``v_pyscf[pyscf_to_irreps]``."""
        index, start = [], 0
        for l in self.shells:
            local = P_SHELL_INDEX if l == 1 else range(2 * l + 1)
            index.extend(start + i for i in local)
            start += 2 * l + 1
        return np.asarray(index, dtype=np.int64)

    def shell_label(self) -> str:
        """Compact description such as ``3s2p1d``."""
        letters = "spdfghi"
        counts = {l: self.shells.count(l) for l in sorted(set(self.shells))}
        return "".join(f"{n}{letters[l]}" for l, n in counts.items())


@lru_cache(maxsize=None)
def _element_layout(basis: str, number: int) -> ElementLayout:
    symbol = chemical_symbols[number]
    try:
        atom = gto.M(atom=f"{symbol} 0 0 0", basis=basis, spin=number % 2, cart=False, verbose=0)
    except Exception as err:  # PySCF raises several types for a missing basis or element
        raise InputError(
            f"basis {basis!r} has no functions for element {symbol} (PySCF said: {err}); "
            "choose a basis that covers it"
        ) from None
    if atom.nbas == 0:
        raise InputError(f"basis {basis!r} has no functions for element {symbol}; choose a basis that covers it")
    shells = []
    for shell in range(atom.nbas):
        shells.extend([atom.bas_angular(shell)] * atom.bas_nctr(shell))
    return ElementLayout(number=number, shells=tuple(shells))


class BasisLayout:
    """Orbital layouts of a set of elements in one PySCF basis, and the AO maps of molecules.

    Args:
        basis: a PySCF basis name such as ``"def2-svp"``.
        elements: atomic numbers or symbols this layout must cover.

    Raises:
        InputError: if the basis does not cover one of the elements.
    """

    def __init__(self, basis: str, elements: Iterable[int | str]):
        self.basis = normalise_basis_name(basis)
        self.elements = tuple(sorted({element_number(e) for e in elements}))
        if not self.elements:
            raise InputError("a basis layout needs at least one element")
        self._layouts = {z: _element_layout(self.basis, z) for z in self.elements}
        # parsed once: PySCF would re-read and parse the basis file for every Mole (about 1 ms per element)
        self._parsed_basis = {chemical_symbols[z]: gto.basis.load(self.basis, chemical_symbols[z])
                              for z in self.elements}

    def __repr__(self) -> str:
        parts = ", ".join(f"{l.symbol}: {l.shell_label()}" for l in self._layouts.values())
        return f"BasisLayout({self.basis!r}, {{{parts}}})"

    def element(self, number: int | str) -> ElementLayout:
        """Layout of one element; raises InputError for an element outside this layout."""
        z = element_number(number)
        if z not in self._layouts:
            known = ", ".join(chemical_symbols[e] for e in self.elements)
            raise InputError(f"element {chemical_symbols[z]} is not covered (known: {known})")
        return self._layouts[z]

    @property
    def max_l(self) -> int:
        """Highest orbital angular momentum over the covered elements."""
        return max(max(layout.shells) for layout in self._layouts.values())

    def nao(self, numbers: Sequence[int]) -> int:
        """Number of AOs of a molecule with atomic numbers ``numbers``."""
        return sum(self.element(z).nao for z in numbers)

    def ao_slices(self, numbers: Sequence[int]) -> list[slice]:
        """AO range of each atom in PySCF order: ``F[s_i, s_j]`` is the (i, j) block."""
        slices, start = [], 0
        for z in numbers:
            n = self.element(z).nao
            slices.append(slice(start, start + n))
            start += n
        return slices

    def pyscf_to_irreps_index(self, numbers: Sequence[int]) -> np.ndarray:
        """Index ``(nao,)`` that takes a molecule's AO vector from PySCF order to irreps order."""
        parts = [self.element(z).pyscf_to_irreps + s.start for z, s in zip(numbers, self.ao_slices(numbers))]
        return np.concatenate(parts)

    def irreps_to_pyscf_index(self, numbers: Sequence[int]) -> np.ndarray:
        """Inverse of :meth:`pyscf_to_irreps_index`."""
        return np.argsort(self.pyscf_to_irreps_index(numbers))

    def wigner_D(self, numbers: Sequence[int], rotation: np.ndarray) -> np.ndarray:
        """AO representation ``(nao, nao)`` of a Cartesian (improper) rotation, in PySCF order.

        ``rotation`` acts on Cartesian positions as ``x -> rotation @ x`` (det +1 or -1).
        Then ``S(R x) = D S(x) D^T`` and ``F(R x) = D F(x) D^T``.
        """
        r_model = torch.as_tensor(rotation_to_model_frame(rotation), dtype=torch.float64)
        blocks = {}
        for z in set(numbers):
            with float64_default():
                d_irreps = self.element(z).irreps.D_from_matrix(r_model).numpy()
            back = np.argsort(self.element(z).pyscf_to_irreps)
            blocks[z] = d_irreps[np.ix_(back, back)]
        nao = self.nao(numbers)
        d = np.zeros((nao, nao))
        for z, s in zip(numbers, self.ao_slices(numbers)):
            d[s, s] = blocks[z]
        return d

    def make_mole(self, numbers: Sequence[int], positions_bohr: np.ndarray, charge: int = 0, spin: int = 0,
                  verbose: int = 0) -> gto.Mole:
        """A PySCF Mole (spherical AOs, Bohr) of this basis whose AO order the layout describes."""
        atoms = [(chemical_symbols[self.element(z).number], tuple(map(float, p)))
                 for z, p in zip(numbers, np.asarray(positions_bohr))]
        mol = gto.M(atom=atoms, basis=self._parsed_basis, unit="Bohr", charge=charge, spin=spin, cart=False,
                    verbose=verbose)
        mol.basis = self.basis  # what PySCF holds had it parsed the name itself (a rebuild parses it again)
        expected = [(s.start, s.stop) for s in self.ao_slices(numbers)]
        actual = [(int(a[2]), int(a[3])) for a in mol.aoslice_by_atom()]
        if expected != actual:  # pragma: no cover - would mean PySCF changed its AO order
            raise RuntimeError(f"PySCF AO layout {actual} differs from the basis layout {expected}")
        return mol
