"""Packing molecules into one graph: atoms, edges (ordered pairs within a molecule) and AO offsets."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np
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
        nmax: the largest AO count (host integer: the forward needs no device-to-host copy).
        block_type: ``(N + E,)`` head of each block: the element index (0..n_el-1) for the on-site
            block of each atom, then ``n_el + n_el * e_i + e_j`` for the block of each edge.
        block_base: ``(N + E,)`` flat index of each block's first entry in the ``(B, nmax, nmax)`` output.
        baseline: optional ``(B, nmax, nmax)`` exact matrices the network's output is added to (zero padded): the
            core Hamiltonian (target ``"fock-hcore"``) or the zeroth-step H0 (``"fock-h0"``), for delta-learning.
    """

    numbers: torch.Tensor
    positions: torch.Tensor
    molecule: torch.Tensor
    ao_offset: torch.Tensor
    nao: torch.Tensor
    edge_src: torch.Tensor
    edge_dst: torch.Tensor
    nmax: int
    block_type: torch.Tensor
    block_base: torch.Tensor
    baseline: torch.Tensor | None = None

    @property
    def num_molecules(self) -> int:
        return int(self.nao.shape[0])

    def to(self, device=None, dtype=None) -> "Batch":
        """Move to ``device``; floating tensors are cast to ``dtype`` when given."""
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                wanted = dtype if (dtype is not None and value.is_floating_point()) else value.dtype
                if value.dtype != wanted or (device is not None and value.device != torch.device(device)):
                    value = value.to(device=device, dtype=wanted)
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
               cutoff: float, baseline_list: Sequence[torch.Tensor] | None = None) -> Batch:
    """Pack molecules into a :class:`Batch`.

    Everything but the positions is index bookkeeping, done in numpy on the host (no torch
    operations, nothing for the forward to synchronise on); the positions keep their autograd graph.

    Args:
        layout: the basis layout (gives AO counts per element).
        numbers_list: per molecule ``(n_k,)`` atomic numbers.
        positions_list: per molecule ``(n_k, 3)`` Bohr (tensors; may require grad).
        cutoff: pairs farther apart than this (Bohr) get no edge and no predicted block.
        baseline_list: optional per-molecule baselines ``(nao_k, nao_k)`` (H_core or H0; may carry a graph).
    """
    elements = np.asarray(layout.elements)
    nao_of_element = np.asarray([layout.element(z).nao for z in layout.elements])
    numbers = [np.asarray(z, dtype=np.int64).reshape(-1) for z in numbers_list]
    for z in numbers:
        for unknown in set(z.tolist()) - set(layout.elements):
            layout.element(unknown)  # raises InputError naming the element
    element = [np.searchsorted(elements, z) for z in numbers]
    sizes = [nao_of_element[e] for e in element]
    naos = [int(s.sum()) for s in sizes]
    nmax = max(naos)
    positions = torch.cat([p if isinstance(p, torch.Tensor) else torch.as_tensor(p) for p in positions_list])
    flat = np.asarray(positions.detach().cpu(), dtype=np.float64)  # neighbour search only: no gradient
    src, dst, starts = [], [], np.cumsum([0] + [len(z) for z in numbers])
    for start, stop in zip(starts[:-1], starts[1:]):
        p = flat[start:stop]
        close = np.linalg.norm(p[:, None, :] - p[None, :, :], axis=-1) <= cutoff
        np.fill_diagonal(close, False)
        i, j = np.nonzero(close)
        src.append(i + start)
        dst.append(j + start)
    molecule = np.concatenate([np.full(len(z), k) for k, z in enumerate(numbers)])
    ao_offset = np.concatenate([np.cumsum(s) - s for s in sizes])
    element, src, dst = np.concatenate(element), np.concatenate(src), np.concatenate(dst)
    n_el, atoms = len(elements), np.arange(len(molecule))
    block_type = np.concatenate([element, n_el + n_el * element[src] + element[dst]])
    rows, cols = np.concatenate([atoms, src]), np.concatenate([atoms, dst])
    block_base = molecule[rows] * nmax * nmax + ao_offset[rows] * nmax + ao_offset[cols]
    baseline = (pad_matrices([torch.as_tensor(h) for h in baseline_list], nmax) if baseline_list is not None
                else None)

    def index(array):
        return torch.as_tensor(array, dtype=torch.long, device=positions.device)

    return Batch(numbers=index(np.concatenate(numbers)), positions=positions, molecule=index(molecule),
                 ao_offset=index(ao_offset), nao=index(naos), edge_src=index(src), edge_dst=index(dst), nmax=nmax,
                 block_type=index(block_type), block_base=index(block_base), baseline=baseline)
