"""Packing molecules into one graph: atoms, edges (ordered pairs within a molecule) and AO offsets."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

import torch

from ..basis import BasisLayout


@dataclass
class Batch:
    """Several molecules packed into one graph (atomic units).

    Attributes:
        numbers: ``(N,)`` atomic numbers of all atoms.
        positions: ``(N, 3)`` Cartesian positions, Bohr.
        molecule: ``(N,)`` index of each atom's molecule.
        ao_offset: ``(N,)`` first AO of each atom inside its molecule (PySCF order).
        nao: ``(B,)`` AO count of each molecule.
        edge_src, edge_dst: ``(E,)`` ordered atom pairs (i, j), i != j, same molecule, within the cutoff.
        hcore: optional ``(B, nmax, nmax)`` exact core Hamiltonians (zero padded), for delta-learning.
    """

    numbers: torch.Tensor
    positions: torch.Tensor
    molecule: torch.Tensor
    ao_offset: torch.Tensor
    nao: torch.Tensor
    edge_src: torch.Tensor
    edge_dst: torch.Tensor
    hcore: torch.Tensor | None = None

    @property
    def num_molecules(self) -> int:
        return int(self.nao.shape[0])

    @property
    def nmax(self) -> int:
        return int(self.nao.max())

    def to(self, device=None, dtype=None) -> "Batch":
        """Move to ``device``; floating tensors are cast to ``dtype`` when given."""
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                value = value.to(device=device, dtype=dtype if value.is_floating_point() else None)
            moved[f.name] = value
        return Batch(**moved)

    def ao_mask(self) -> torch.Tensor:
        """``(B, nmax, nmax)`` bool: True inside each molecule's ``nao x nao`` matrix."""
        index = torch.arange(self.nmax, device=self.nao.device)
        valid = index[None, :] < self.nao[:, None]
        return valid[:, :, None] & valid[:, None, :]


def pad_matrices(matrices: Sequence[torch.Tensor], nmax: int | None = None) -> torch.Tensor:
    """Stack square matrices of different sizes into ``(B, nmax, nmax)`` with zero padding."""
    nmax = nmax or max(m.shape[0] for m in matrices)
    out = matrices[0].new_zeros((len(matrices), nmax, nmax))
    for k, m in enumerate(matrices):
        out[k, : m.shape[0], : m.shape[1]] = m
    return out


def make_batch(layout: BasisLayout, numbers_list: Sequence[torch.Tensor], positions_list: Sequence[torch.Tensor],
               cutoff: float, hcore_list: Sequence[torch.Tensor] | None = None) -> Batch:
    """Pack molecules into a :class:`Batch`.

    Args:
        layout: the basis layout (gives AO counts per element).
        numbers_list: per molecule ``(n_k,)`` atomic numbers.
        positions_list: per molecule ``(n_k, 3)`` Bohr.
        cutoff: pairs farther apart than this (Bohr) get no edge and no predicted block.
        hcore_list: optional per-molecule core Hamiltonians ``(nao_k, nao_k)``.
    """
    numbers = torch.cat([torch.as_tensor(z, dtype=torch.long) for z in numbers_list])
    positions = torch.cat([torch.as_tensor(p) for p in positions_list])
    molecule, offsets, naos, src, dst = [], [], [], [], []
    start = 0
    for k, (z, p) in enumerate(zip(numbers_list, positions_list)):
        n = len(z)
        sizes = torch.tensor([layout.element(int(a)).nao for a in z], dtype=torch.long)
        offsets.append(torch.cumsum(sizes, 0) - sizes)
        naos.append(int(sizes.sum()))
        molecule.append(torch.full((n,), k, dtype=torch.long))
        p = torch.as_tensor(p)
        close = torch.cdist(p.detach(), p.detach()) <= cutoff  # neighbour search only: no gradient
        close.fill_diagonal_(False)
        i, j = torch.nonzero(close, as_tuple=True)
        src.append(i + start)
        dst.append(j + start)
        start += n
    hcore = pad_matrices([torch.as_tensor(h) for h in hcore_list]) if hcore_list is not None else None
    return Batch(numbers=numbers, positions=positions, molecule=torch.cat(molecule), ao_offset=torch.cat(offsets),
                 nao=torch.tensor(naos, dtype=torch.long), edge_src=torch.cat(src), edge_dst=torch.cat(dst),
                 hcore=hcore)
