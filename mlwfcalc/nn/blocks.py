"""From irreps to matrix blocks: one head per element (on-site) or element pair (pair blocks).

A block between shells a (l1) and b (l2) is ``B_{m1 m2} = sum_L sum_M C^{l1 l2 L}_{m1 m2 M} f^L_M``
with L = |l1-l2|..l1+l2 and parity (-1)^(l1+l2). The Clebsch-Gordan coefficients (``o3.wigner_3j``,
scaled by sqrt(2L+1)) form one orthonormal matrix per head, built once, mapping the irreps
coefficients of all shell pairs of an atom pair to its whole AO block, already in PySCF order.
"""

from __future__ import annotations

import math

import torch
from e3nn import o3
from torch import nn

from ..basis import ElementLayout, float64_default

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


def clebsch_gordan_map(layout_i: ElementLayout, layout_j: ElementLayout) -> torch.Tensor:
    """Orthonormal map ``(dim, nao_i * nao_j)`` from block irreps coefficients to a PySCF-ordered block."""
    def shell_starts(layout):
        starts, s = [], 0
        for l in layout.shells:
            starts.append(s)
            s += 2 * l + 1
        return starts

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


class BlockHead(nn.Module):
    """Hidden irreps of an atom (or atom pair) -> its AO block ``(nao_i, nao_j)`` in PySCF order.

    ``coefficient = shift + scale * Linear(features)``: ``shift`` is non-zero only on scalar (L=0)
    coefficients and ``scale`` is constant within an irrep, so the normalisation is equivariant.
    """

    def __init__(self, irreps_in: o3.Irreps, layout_i: ElementLayout, layout_j: ElementLayout):
        super().__init__()
        self.shape = (layout_i.nao, layout_j.nao)
        self.spec = block_irreps(layout_i, layout_j)
        self.irreps_out = o3.Irreps([(1, (big_l, p)) for _, _, big_l, p in self.spec])
        self.linear = o3.Linear(irreps_in, self.irreps_out)
        self.register_buffer("cg", clebsch_gordan_map(layout_i, layout_j).to(torch.get_default_dtype()))
        self.register_buffer("shift", torch.zeros(self.irreps_out.dim))
        self.register_buffer("scale", torch.ones(self.irreps_out.dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(n, irreps_in.dim)`` -> ``(n, nao_i, nao_j)``."""
        coefficients = self.shift + self.scale * self.linear(features)
        return (coefficients @ self.cg).reshape(-1, *self.shape)

    def coefficients(self, blocks: torch.Tensor) -> torch.Tensor:
        """Inverse map: ``(n, nao_i, nao_j)`` blocks -> ``(n, dim)`` irreps coefficients."""
        return blocks.reshape(len(blocks), -1) @ self.cg.T

    @torch.no_grad()
    def fit_normalisation(self, blocks: torch.Tensor) -> None:
        """Set ``shift`` (scalar means) and ``scale`` (per-irrep RMS) from target blocks ``(n, nao_i, nao_j)``."""
        c = self.coefficients(blocks.to(self.cg.dtype))
        shift, scale = torch.zeros_like(self.shift), torch.ones_like(self.scale)
        start = 0
        for _, ir in self.irreps_out:
            sl = slice(start, start + ir.dim)
            if ir.l == 0 and ir.p == 1:
                shift[sl] = c[:, sl].mean()
            scale[sl] = ((c[:, sl] - shift[sl]) ** 2).mean().sqrt().clamp_min(MIN_SCALE)
            start += ir.dim
        self.shift.copy_(shift)
        self.scale.copy_(scale)
