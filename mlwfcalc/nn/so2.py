"""SO(2) convolutions in edge-aligned frames (eSCN, Passaro and Zitnick 2023), with parity.

Feature layout, used by the whole network: ``(n, K, C)`` with ``K = (lmax+1)^2`` coefficients in
e3nn order (l-major, m = -l..l, model frame) and ``C = 2 c`` channels: the first ``c`` of natural
parity ``(-1)^l``, the last ``c`` of the other parity (``0e 1o 2e ...`` and ``0o 1e 2o ...``).

Rotating an edge's features into a frame whose polar axis (e3nn's y) lies along the edge turns
the tensor product with the edge's spherical harmonics into independent linear maps per ``|m|``
(O(L^3) instead of O(L^6)). In that frame the symmetry left is C_inf_v (rotations about the edge,
reflections through planes holding it); the equivariant linear maps are, for each ``m > 0``,
``[x_+m, x_-m] -> [x_+m W1 - x_-m W2, x_+m W2 + x_-m W1]`` with W1 coupling channels of equal
parity and W2 channels of opposite parity, and at ``m = 0`` W1 alone. Everything after the
rotation is a few batched matmuls whatever the number of Clebsch-Gordan paths.

Rows inside the edge frame are kept in *m-major* order: ``m = 0`` (l = 0..lmax), then for each
``m = 1..lmax`` the ``+m`` rows (l = m..lmax) and the ``-m`` rows (l = m..lmax).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from e3nn import o3
from torch import nn

from ..basis import float64_default

#: Two fixed, generic reference directions for building edge frames (unit vectors, model frame).
#: An edge uses the first unless it is within 45 degrees of it; the output does not depend on the choice.
_REFERENCE_A = (0.2310, 0.5367, 0.8115)
_REFERENCE_B = (0.8467, 0.1858, -0.4985)


def l_of_rows(lmax: int) -> np.ndarray:
    """``(K,)`` the l of each coefficient in e3nn order."""
    return np.concatenate([[l] * (2 * l + 1) for l in range(lmax + 1)])


def m_major_order(lmax: int) -> np.ndarray:
    """``(K,)`` e3nn row index of each m-major row (see the module docstring)."""
    order = [l * l + l for l in range(lmax + 1)]
    for m in range(1, lmax + 1):
        order += [l * l + l + m for l in range(m, lmax + 1)]
        order += [l * l + l - m for l in range(m, lmax + 1)]
    return np.asarray(order)


def m_block_sizes(lmax: int) -> list[int]:
    """Row counts of the m-major blocks: ``lmax + 1`` for m = 0, ``2 (lmax + 1 - m)`` for m > 0."""
    return [lmax + 1] + [2 * (lmax + 1 - m) for m in range(1, lmax + 1)]


def l_abs_m_index(lmax: int) -> np.ndarray:
    """``(K,)`` for each m-major row, the index of its ``(l, |m|)`` pair (``(lmax+1)(lmax+2)/2`` pairs)."""
    pairs = {}
    out = []
    for k in m_major_order(lmax):
        l = int(math.isqrt(int(k)))
        m = abs(int(k) - l * l - l)
        out.append(pairs.setdefault((l, m), len(pairs)))
    return np.asarray(out)


class EdgeFrames(nn.Module):
    """Wigner matrices of per-edge rotations into the edge frame, built from the 3x3 rotations.

    ``D^1 = R`` in the model frame, and ``D^l = Q_l^T (D^(l-1) (x) D^1) Q_l`` with ``Q_l`` e3nn's
    Clebsch-Gordan coefficients ``(l-1) x 1 -> l`` (an isometric intertwiner, so the identity is
    exact): a polynomial in R with no Euler angles, hence no singular gradients for edges along an
    axis, and a handful of operations for all edges at once. One call per forward, shared by every layer.
    """

    def __init__(self, lmax: int):
        super().__init__()
        self.lmax = lmax
        k = (lmax + 1) ** 2
        with float64_default():
            for l in range(2, lmax + 1):
                coupling = o3.wigner_3j(l - 1, 1, l) * math.sqrt(2 * l + 1)  # (2l-1, 3, 2l+1), orthonormal columns
                self.register_buffer(f"coupling_{l}", coupling.reshape(3 * (2 * l - 1), 2 * l + 1), persistent=False)
        # where each block's entries go in the flattened (K, K) matrix, rows m-major
        row_of = np.argsort(m_major_order(lmax))
        where = []
        for l in range(lmax + 1):
            rows = np.arange(l * l, (l + 1) ** 2)
            where.append((row_of[rows][:, None] * k + rows[None, :]).reshape(-1))
        self.register_buffer("where", torch.as_tensor(np.concatenate(where)), persistent=False)
        self.register_buffer("reference", torch.tensor([_REFERENCE_A, _REFERENCE_B], dtype=torch.get_default_dtype()),
                             persistent=False)

    def rotations(self, vectors: torch.Tensor) -> torch.Tensor:
        """``(E, 3)`` edge vectors (model frame) -> ``(E, 3, 3)`` proper rotations R with ``R u = e_y``."""
        u = vectors / vectors.norm(dim=1, keepdim=True)
        reference = self.reference.to(u.dtype)
        near_a = (u @ reference[0]).abs() > math.sqrt(0.5)
        t = torch.where(near_a[:, None], reference[1], reference[0])
        ex = torch.linalg.cross(t, u)
        ex = ex / ex.norm(dim=1, keepdim=True)
        ez = torch.linalg.cross(ex, u)
        return torch.stack([ex, u, ez], dim=1)

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        """``(E, 3)`` edge vectors -> ``(E, K, K)`` Wigner matrices, rows m-major, columns e3nn order.

        ``D @ x`` takes lab features ``(E, K, C)`` into the edge frame; ``D^T @ y`` takes them back.
        """
        r = self.rotations(vectors)
        n = len(r)
        blocks = [torch.ones(n, 1, dtype=r.dtype, device=r.device), r.reshape(n, 9)]
        d = r
        for l in range(2, self.lmax + 1):
            q = getattr(self, f"coupling_{l}").to(r.dtype)
            product = (d[:, :, None, :, None] * r[:, None, :, None, :]).reshape(n, 3 * (2 * l - 1), 3 * (2 * l - 1))
            d = q.T @ product @ q
            blocks.append(d.reshape(n, (2 * l + 1) ** 2))
        k = (self.lmax + 1) ** 2
        return r.new_zeros(n, k * k).index_copy_(1, self.where, torch.cat(blocks, dim=1)).reshape(n, k, k)


def parity_masks(rows: int, channels_in: int, channels_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rows*Cin, rows*Cout)`` bool masks of weights between equal-parity and opposite-parity channels.

    Flattened index = row * C + channel; channel < C/2 is natural parity.
    """
    parity_in = (torch.arange(channels_in) >= channels_in // 2).repeat(rows)
    parity_out = (torch.arange(channels_out) >= channels_out // 2).repeat(rows)
    same = parity_in[:, None] == parity_out[None, :]
    return same, ~same


class SO2Linear(nn.Module):
    """The equivariant linear map of edge-frame features ``(E, K, Cin) -> (E, K, Cout)`` (m-major rows).

    One matmul per m: ``W0`` at m = 0 (equal parity only); for m > 0 the block matrix
    ``[[W1, W2], [-W2, W1]]`` acting on ``[x_+m, x_-m]`` (W1 equal parity, W2 opposite parity).
    All free weights live in one vector; one gather builds every m's matrix. An optional per-edge
    scale ``(E, (lmax+1)(lmax+2)/2 * Cin)`` multiplies the input per ``(l, |m|, channel)`` first:
    the radial dependence (eSCN's choice).
    """

    def __init__(self, lmax: int, channels_in: int, channels_out: int):
        super().__init__()
        self.lmax, self.channels_in, self.channels_out = lmax, channels_in, channels_out
        self.sizes = m_block_sizes(lmax)
        count, index, sign, stds, self.matrix_shapes = 0, [], [], [], []

        def allocate(mask, std):
            nonlocal count
            ids = torch.full(mask.shape, -1, dtype=torch.long)
            ids[mask] = torch.arange(count, count + int(mask.sum()))
            count += int(mask.sum())
            stds.append(torch.full((int(mask.sum()),), std))
            return ids

        for m in range(lmax + 1):
            rows = lmax + 1 - m
            same, cross = parity_masks(rows, channels_in, channels_out)
            std = 1.0 / math.sqrt(rows * channels_in)
            w1 = allocate(same, std)
            if m == 0:
                ids, signs = w1, torch.ones(w1.shape)
            else:
                w2 = allocate(cross, std)
                ids = torch.cat([torch.cat([w1, w2], 1), torch.cat([w2, w1], 1)], 0)
                signs = torch.cat([torch.ones(rows * channels_in, 2 * rows * channels_out),
                                   torch.cat([-torch.ones(rows * channels_in, rows * channels_out),
                                              torch.ones(rows * channels_in, rows * channels_out)], 1)], 0)
            self.matrix_shapes.append(tuple(ids.shape))
            signs = torch.where(ids < 0, torch.zeros(()), signs)  # masked entries read weight 0 with sign 0
            index.append(ids.clamp_min(0).reshape(-1))
            sign.append(signs.reshape(-1))
        self.weight = nn.Parameter(torch.randn(count) * torch.cat(stds))
        self.register_buffer("index", torch.cat(index), persistent=False)
        self.register_buffer("sign", torch.cat(sign), persistent=False)
        self.register_buffer("scale_index", torch.as_tensor(l_abs_m_index(lmax)), persistent=False)

    def matrices(self) -> list[torch.Tensor]:
        """The per-m matrices ``(rows_in, rows_out)`` built from the free weights."""
        flat = self.weight.index_select(0, self.index) * self.sign
        parts = torch.split(flat, [a * b for a, b in self.matrix_shapes])
        return [part.view(shape) for part, shape in zip(parts, self.matrix_shapes)]

    def forward(self, x: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        if scale is not None:
            x = x * scale.view(len(x), self.scale_width() // self.channels_in, self.channels_in).index_select(
                1, self.scale_index)
        n = len(x)
        outputs = [(chunk.reshape(n, w.shape[0]) @ w).view(n, w.shape[1] // self.channels_out, self.channels_out)
                   for chunk, w in zip(torch.split(x, self.sizes, dim=1), self.matrices())]
        return torch.cat(outputs, dim=1)

    def scale_width(self) -> int:
        """Width of the per-edge scale this layer takes."""
        return (self.lmax + 1) * (self.lmax + 2) // 2 * self.channels_in


class _ContiguousGradient(torch.autograd.Function):
    """Identity whose backward makes the incoming gradient contiguous (differentiable twice).

    CPU ``bmm`` falls back to a loop over the batch (about 300 operations for 25 matrices) when an
    operand has no unit stride in its last two dimensions, which some gradients arrive with.
    """

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous()


def contiguous_gradient(x: torch.Tensor) -> torch.Tensor:
    """``x``, with its gradient made contiguous on the way back (see :class:`_ContiguousGradient`)."""
    return _ContiguousGradient.apply(x)


class LinearPerL(nn.Module):
    """Lab-frame equivariant linear map ``(n, K, Cin) -> (n, K, Cout)``: one matrix per l, equal parity only.

    A bias acts on the ``0e`` channels alone.
    """

    def __init__(self, lmax: int, channels_in: int, channels_out: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(lmax + 1, channels_in, channels_out) / math.sqrt(channels_in / 2))
        same, _ = parity_masks(1, channels_in, channels_out)
        self.register_buffer("mask", same.to(torch.get_default_dtype()), persistent=False)
        self.register_buffer("l_index", torch.as_tensor(l_of_rows(lmax)), persistent=False)
        k = (lmax + 1) ** 2
        self.bias = nn.Parameter(torch.zeros(k, channels_out)) if bias else None
        bias_mask = torch.zeros(k, channels_out)
        bias_mask[0, : channels_out // 2] = 1.0
        self.register_buffer("bias_mask", bias_mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = (self.weight * self.mask).index_select(0, self.l_index)  # (K, Cin, Cout)
        out = contiguous_gradient(torch.bmm(x.transpose(0, 1), w)).transpose(0, 1)
        return out + self.bias * self.bias_mask if self.bias is not None else out


class Gate(nn.Module):
    """Equivariant activation of ``(n, K, C)`` features: SiLU on ``0e`` channels, sigmoid gates elsewhere.

    Each gated slot ``(l, channel)`` (all rows of one l share it, in either frame)
    is multiplied by ``sigmoid(linear(invariants))``; ``invariants`` ``(n, S)`` are the ``0e``
    channels in the lab frame, and all natural-parity ``m = 0`` coefficients in the edge frame
    (invariant under the edge's C_inf_v). ``rows_l`` gives the l of each row in the layout used.
    """

    def __init__(self, lmax: int, channels: int, num_invariants: int, rows_l: np.ndarray):
        super().__init__()
        half = channels // 2
        self.half = half
        self.linear = nn.Linear(num_invariants, (lmax + 1) * channels - half)
        # slot of (row, channel) in [0e values, gate logits]: l * C + channel (the 0e ones gate themselves: SiLU)
        slot = torch.as_tensor(rows_l)[:, None] * channels + torch.arange(channels)[None, :]
        self.register_buffer("slot", slot.reshape(-1), persistent=False)

    def forward(self, x: torch.Tensor, invariants: torch.Tensor) -> torch.Tensor:
        pre = torch.cat([x[:, 0, : self.half], self.linear(invariants)], dim=1)
        gates = torch.sigmoid(pre).index_select(1, self.slot).reshape(x.shape)
        return x * gates
