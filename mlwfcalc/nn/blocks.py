"""From irreps to matrix blocks: every on-site and pair block of a batch in one gather and one bmm.

A block between shells a (l1) and b (l2) is ``B_{m1 m2} = sum_L sum_M C^{l1 l2 L}_{m1 m2 M} f^L_M``
with L = |l1-l2|..l1+l2 and parity (-1)^(l1+l2). The Clebsch-Gordan coefficients (``o3.wigner_3j``,
scaled by sqrt(2L+1)) form one orthonormal matrix per block type (an element, or an ordered
element pair), built once, mapping the irreps coefficients of all shell pairs to the whole AO
block in PySCF order. All types share one padded layout: the coefficients of a block are an array
``(lmax+1, 2, 2 lmax + 1, M)`` (L, parity kind, component, multiplicity), the per-type linear maps
are stacked into one weight, and each type's Clebsch-Gordan map becomes a padded list of
``(coefficient, block entry, value)`` triples.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from e3nn import o3
from torch import nn

from ..basis import BasisLayout, ElementLayout, float64_default

#: Smallest per-irrep scale, Hartree: coefficients that hardly vary are predicted from their mean.
MIN_SCALE = 1e-6


def block_irreps(layout_i: ElementLayout, layout_j: ElementLayout) -> list[tuple[int, int, int, int]]:
    """The irreps of a block between an atom of ``layout_i`` and one of ``layout_j``.

    Returns:
        ``(a, b, L, parity)`` for every shell a of i, shell b of j and coupled L, in head order.
    """
    out = []
    for a, l1 in enumerate(layout_i.shells):
        for b, l2 in enumerate(layout_j.shells):
            out.extend((a, b, big_l, (-1) ** (l1 + l2)) for big_l in range(abs(l1 - l2), l1 + l2 + 1))
    return out


def parity_kind(big_l: int, parity: int) -> int:
    """Which half of the feature channels carries irreps ``(L, parity)``: 0 natural ((-1)^L), 1 the other."""
    return 0 if parity == (-1) ** big_l else 1


def clebsch_gordan_map(layout_i: ElementLayout, layout_j: ElementLayout) -> torch.Tensor:
    """Orthonormal map ``(dim, nao_i * nao_j)`` (float64) from block irreps coefficients to a PySCF-ordered block."""
    def shell_starts(layout):
        return np.cumsum([0] + [2 * l + 1 for l in layout.shells])[:-1]

    start_i, start_j = shell_starts(layout_i), shell_starts(layout_j)
    to_pyscf_i, to_pyscf_j = layout_i.pyscf_to_irreps, layout_j.pyscf_to_irreps
    rows = []
    with float64_default():
        for a, b, big_l, _ in block_irreps(layout_i, layout_j):
            l1, l2 = layout_i.shells[a], layout_j.shells[b]
            cg = o3.wigner_3j(l1, l2, big_l) * math.sqrt(2 * big_l + 1)  # (2l1+1, 2l2+1, 2L+1)
            ii = torch.as_tensor(to_pyscf_i[start_i[a]:start_i[a] + 2 * l1 + 1])
            jj = torch.as_tensor(to_pyscf_j[start_j[b]:start_j[b] + 2 * l2 + 1])
            for m in range(2 * big_l + 1):
                block = torch.zeros(layout_i.nao, layout_j.nao, dtype=torch.float64)
                block[ii[:, None], jj[None, :]] = cg[:, :, m]
                rows.append(block.reshape(-1))
    return torch.stack(rows)


class BlockHeads(nn.Module):
    """Features ``(R, K, C)`` of atoms and atom pairs -> their AO blocks, added into ``(B, nmax, nmax)``.

    ``coefficient = shift + scale * W_type(features)``, with W_type a linear map per l (features of
    irreps (L, p) -> coefficients of irreps (L, p)); ``shift`` is non-zero only on 0e coefficients and
    ``scale`` is constant within an irrep, so the normalisation is equivariant.

    Args:
        layout: the basis layout; types are its elements (on-site), then ordered element pairs.
        lmax: highest l of the features (>= 2 x highest orbital l).
        channels: C, the feature channels (half of each parity).
    """

    def __init__(self, layout: BasisLayout, lmax: int, channels: int):
        super().__init__()
        self.lmax, self.channels = lmax, channels
        elements = [layout.element(z) for z in layout.elements]
        self.types = [(e, e) for e in elements] + [(a, b) for a in elements for b in elements]
        self.components = 2 * lmax + 1
        self.specs = [block_irreps(a, b) for a, b in self.types]
        self.maps = [clebsch_gordan_map(a, b) for a, b in self.types]
        self.multiplicity = max(sum(1 for s in spec if (s[2], s[3]) == key) for spec in self.specs for key in
                                {(s[2], s[3]) for s in spec})
        self.slots = [self._slots(spec) for spec in self.specs]  # per type: (coefficient row -> flat position)
        triples = [self._triples(slots, cg, b.nao) for slots, cg, (a, b) in zip(self.slots, self.maps, self.types)]
        width = max(len(t[0]) for t in triples)

        def padded(k, dtype):
            return torch.stack([torch.nn.functional.pad(torch.as_tensor(t[k], dtype=dtype), (0, width - len(t[k])))
                                for t in triples])

        self.register_buffer("source", padded(0, torch.long), persistent=False)
        self.register_buffer("entry_row", padded(1, torch.long), persistent=False)
        self.register_buffer("entry_col", padded(2, torch.long), persistent=False)
        self.register_buffer("value", padded(3, torch.float64).to(torch.get_default_dtype()), persistent=False)
        n_types = len(self.types)
        half = channels // 2
        self.weight = nn.Parameter(torch.randn(n_types, lmax + 1, 2, half, self.multiplicity) / math.sqrt(half))
        self.register_buffer("scale", torch.ones(n_types, lmax + 1, 2, 1, self.multiplicity))
        self.register_buffer("shift", torch.zeros(n_types, (lmax + 1) * 2 * self.components * self.multiplicity))
        # (l, parity kind, component) of each padded row, as an index into the K rows plus one zero row
        pad = np.full((lmax + 1, self.components), (lmax + 1) ** 2)
        for l in range(lmax + 1):
            pad[l, : 2 * l + 1] = np.arange(l * l, l * l + 2 * l + 1)
        self.register_buffer("pad_index", torch.as_tensor(pad.reshape(-1)), persistent=False)

    def _slots(self, spec) -> list[int]:
        """Flat position in the padded coefficient array of each Clebsch-Gordan row of one type."""
        seen: dict[tuple[int, int], int] = {}
        out = []
        for _, _, big_l, parity in spec:
            kind = parity_kind(big_l, parity)
            mu = seen.setdefault((big_l, kind), 0)
            seen[(big_l, kind)] = mu + 1
            for m in range(2 * big_l + 1):
                out.append(((big_l * 2 + kind) * self.components + m) * self.multiplicity + mu)
        return out

    @staticmethod
    def _triples(slots, cg: torch.Tensor, nao_j: int):
        rows, cols = torch.nonzero(cg.abs() > 1e-12, as_tuple=True)
        source = [slots[r] for r in rows.tolist()]
        return source, (cols // nao_j).tolist(), (cols % nao_j).tolist(), cg[rows, cols].tolist()

    def coefficients(self, features: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        """``(R, K, C)`` features -> ``(R, (lmax+1) * 2 * (2 lmax + 1) * M)`` padded coefficients."""
        n, half = len(features), self.channels // 2
        x = torch.cat([features, features.new_zeros(n, 1, self.channels)], dim=1).index_select(1, self.pad_index)
        x = x.reshape(n, self.lmax + 1, self.components, 2, half).transpose(2, 3)  # (R, L, kind, m, c)
        weight = (self.weight * self.scale).index_select(0, types)  # (R, L, kind, c, M)
        coefficients = torch.matmul(x, weight)  # (R, L, kind, m, M)
        return coefficients.reshape(n, self.shift.shape[1]) + self.shift.index_select(0, types)

    def forward(self, features: torch.Tensor, types: torch.Tensor, base: torch.Tensor, nmax: int,
                num_molecules: int) -> torch.Tensor:
        """Blocks of ``features`` ``(R, K, C)`` of ``types`` ``(R,)`` summed into ``(B, nmax, nmax)``.

        ``base`` ``(R,)`` is the flat index of each block's first entry (:class:`~mlwfcalc.nn.graph.Batch`).
        """
        coefficients = self.coefficients(features, types)
        values = coefficients.gather(1, self.source[types]) * self.value[types]
        where = base[:, None] + self.entry_row[types] * nmax + self.entry_col[types]
        flat = features.new_zeros(num_molecules * nmax * nmax).index_add_(0, where.reshape(-1), values.reshape(-1))
        return flat.reshape(num_molecules, nmax, nmax)

    def block_entries(self, type_index: int, base: torch.Tensor, nmax: int) -> torch.Tensor:
        """Flat indices ``(n, nao_i * nao_j)`` of whole blocks of one type starting at ``base`` ``(n,)``."""
        a, b = self.types[type_index]
        rows = torch.arange(a.nao, device=base.device)[:, None] * nmax + torch.arange(b.nao, device=base.device)
        return base[:, None] + rows.reshape(-1)

    def irreps_of(self, matrices: torch.Tensor, types: torch.Tensor, base: torch.Tensor, nmax: int) -> torch.Tensor:
        """The transpose of :meth:`forward`'s Clebsch-Gordan maps (their inverse: each is orthonormal): the padded
        irreps coefficients ``(R, (lmax+1) * 2 * (2 lmax + 1) * M)`` of the blocks of ``matrices``
        ``(B, nmax, nmax)`` at ``types`` and ``base`` ``(R,)``, no weights. Differentiable in ``matrices``."""
        where = base[:, None] + self.entry_row[types] * nmax + self.entry_col[types]
        values = matrices.reshape(-1)[where] * self.value[types].to(matrices.dtype)
        return values.new_zeros(len(types), self.shift.shape[1]).scatter_add_(1, self.source[types], values)

    @torch.no_grad()
    def irrep_statistics(self, matrices: torch.Tensor, types: torch.Tensor, base: torch.Tensor,
                         nmax: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per type, the 0e means (``shift``'s shape) and per-irrep RMS about them (``scale``'s shape) of the
        blocks of ``matrices`` ``(B, nmax, nmax)``; float64, on the host."""
        flat, types, base = matrices.reshape(-1).cpu(), types.cpu(), base.cpu()
        shift = torch.zeros(self.shift.shape, dtype=torch.float64)
        scale = torch.ones(self.scale.shape, dtype=torch.float64)
        for t, (spec, cg, slots) in enumerate(zip(self.specs, self.maps, self.slots)):
            rows = torch.nonzero(types == t, as_tuple=True)[0]
            if not len(rows):
                continue
            c = flat[self.block_entries(t, base[rows], nmax)].to(torch.float64) @ cg.T  # (n, dim)
            start = 0
            for _, _, big_l, parity in spec:
                part = c[:, start:start + 2 * big_l + 1]
                slot = slots[start]
                mu = slot % self.multiplicity
                kind = parity_kind(big_l, parity)
                mean = part.mean() if (big_l == 0 and kind == 0) else part.new_zeros(())
                shift[t, slot] = mean
                scale[t, big_l, kind, 0, mu] = ((part - mean) ** 2).mean().sqrt().clamp_min(MIN_SCALE)
                start += 2 * big_l + 1
        return shift, scale

    @torch.no_grad()
    def fit_normalisation(self, targets: torch.Tensor, types: torch.Tensor, base: torch.Tensor, nmax: int) -> None:
        """Set ``shift`` (0e means) and ``scale`` (per-irrep RMS) from target matrices ``(B, nmax, nmax)``."""
        shift, scale = self.irrep_statistics(targets, types, base, nmax)
        self.shift.copy_(shift)
        self.scale.copy_(scale)


class BlockInput(nn.Module):
    """Matrix blocks ``(B, nmax, nmax)`` of atoms and atom pairs -> features ``(R, K, C)``: the heads' maps run
    backwards (:meth:`BlockHeads.irreps_of`), each irrep normalised by its fitted 0e mean and RMS, then a learned
    linear map per block type and irrep from its multiplicity to the channels of its parity. Equivariant, as the
    heads are; how a known matrix (H0) enters the network as node and pair features.

    Args:
        heads: the network's :class:`BlockHeads` (their layout; their buffers are used at call time).
    """

    def __init__(self, heads: BlockHeads):
        super().__init__()
        n_types, half = len(heads.types), heads.channels // 2
        self.lmax, self.channels, self.components = heads.lmax, heads.channels, heads.components
        self.weight = nn.Parameter(torch.randn(n_types, heads.lmax + 1, 2, heads.multiplicity, half)
                                   / math.sqrt(heads.multiplicity))
        self.register_buffer("shift", torch.zeros_like(heads.shift))
        self.register_buffer("scale", torch.ones_like(heads.scale))

    def forward(self, heads: BlockHeads, matrices: torch.Tensor, types: torch.Tensor, base: torch.Tensor,
                nmax: int) -> torch.Tensor:
        """Features ``(R, (lmax+1)^2, C)`` of the blocks of ``matrices`` at ``types``, ``base`` ``(R,)``."""
        n, half = len(types), self.channels // 2
        coefficients = heads.irreps_of(matrices, types, base, nmax) - self.shift.index_select(0, types)
        x = coefficients.reshape(n, self.lmax + 1, 2, self.components, -1) / self.scale.index_select(0, types)
        y = torch.matmul(x, self.weight.index_select(0, types))  # (R, L, kind, m, c)
        y = y.transpose(2, 3).reshape(n, (self.lmax + 1) * self.components, 2 * half)
        k = (self.lmax + 1) ** 2
        return y.new_zeros(n, k + 1, self.channels).index_add_(1, heads.pad_index, y)[:, :k]

    @torch.no_grad()
    def fit_normalisation(self, heads: BlockHeads, matrices: torch.Tensor, types: torch.Tensor, base: torch.Tensor,
                          nmax: int) -> None:
        """Set the per-irrep shift and scale from the input matrices ``(B, nmax, nmax)`` of a (large) batch."""
        shift, scale = heads.irrep_statistics(matrices, types, base, nmax)
        self.shift.copy_(shift)
        self.scale.copy_(scale)
