"""The equivariant Hamiltonian network: (Z, R) -> Kohn-Sham matrix F in PySCF AO order.

Data flow (all tensors in atomic units, positions turned to the model frame (y, z, x) first):

    one-hot(Z) -> scalars -> num_layers x Interaction (NequIP-style convolution with a gate)
        node features h_i ----------------------------> on-site head per element  -> F_ii
        PairFeatures(h_i, h_j, Y(r_ij), |r_ij|) -------> pair head per element pair -> F_ij
    F <- (F + F^T) / 2  (+ H_core when the model learns F - H_core)

Equivariance under rotations and inversion comes from e3nn; permutation from sums over edges;
translation from using only differences of positions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from e3nn import o3
from e3nn.nn import FullyConnectedNet, Gate
from torch import nn

from ..basis import BasisLayout, float64_default, to_model_frame
from ..validation import InputError
from .blocks import BlockHead
from .graph import Batch

TARGETS = ("fock", "fock-hcore")


@dataclass
class ModelConfig:
    """Everything needed to rebuild the network (saved in ``config.json``).

    Attributes:
        basis: PySCF basis name of the predicted matrix.
        elements: atomic numbers the model covers.
        lmax: highest l of node features and edge spherical harmonics (>= 2 x highest orbital l).
        channels: multiplicity of natural-parity irreps ((-1)^l); the other parity gets half.
        num_layers: message-passing layers.
        num_radial: Bessel radial basis functions.
        radial_hidden: width of the radial MLPs.
        cutoff: Bohr; atom pairs beyond it exchange no message and get a zero block.
        avg_neighbors: message normalisation (sum over neighbours / sqrt(avg_neighbors)).
        target: ``"fock"`` (predict F) or ``"fock-hcore"`` (predict F - H_core, add the exact H_core).
    """

    basis: str = "def2-svp"
    elements: list[int] = field(default_factory=lambda: [1, 8])
    lmax: int = 4
    channels: int = 16
    num_layers: int = 3
    num_radial: int = 8
    radial_hidden: int = 32
    cutoff: float = 15.0
    avg_neighbors: float = 2.0
    target: str = "fock"

    def __post_init__(self):
        self.elements = sorted(int(z) for z in self.elements)
        if self.target not in TARGETS:
            raise InputError(f"unknown target {self.target!r}; choose one of {TARGETS}")

    def hidden_irreps(self) -> o3.Irreps:
        """Both parities for every l <= lmax: natural parity ``channels``, the other ``channels // 2``."""
        half = max(1, self.channels // 2)
        return o3.Irreps([(self.channels if p == (-1) ** l else half, (l, p))
                          for l in range(self.lmax + 1) for p in (1, -1)])

    def to_dict(self) -> dict:
        return asdict(self)


class BesselBasis(nn.Module):
    """``sqrt(2/c) sin(n pi r / c) / r`` times a smooth polynomial envelope that vanishes at the cutoff c."""

    def __init__(self, num_radial: int, cutoff: float, p: int = 6):
        super().__init__()
        self.cutoff, self.p = cutoff, p
        self.register_buffer("frequencies", torch.arange(1, num_radial + 1) * math.pi / cutoff)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """``(E,)`` Bohr -> ``(E, num_radial)``."""
        x = r / self.cutoff
        p = self.p
        envelope = (1 - (p + 1) * (p + 2) / 2 * x**p + p * (p + 2) * x ** (p + 1) - p * (p + 1) / 2 * x ** (p + 2))
        envelope = envelope * (x < 1)
        bessel = math.sqrt(2 / self.cutoff) * torch.sin(self.frequencies * r[:, None]) / r[:, None]
        return bessel * envelope[:, None]


def _gate_for(irreps_out: o3.Irreps) -> tuple[Gate, o3.Irreps]:
    """A gate producing ``irreps_out`` and the irreps it takes (scalars + gates + gated)."""
    scalars = o3.Irreps([(m, ir) for m, ir in irreps_out if ir.l == 0])
    gated = o3.Irreps([(m, ir) for m, ir in irreps_out if ir.l > 0])
    gates = o3.Irreps(f"{gated.num_irreps}x0e")
    acts = [torch.nn.functional.silu if ir.p == 1 else torch.tanh for _, ir in scalars]
    gate = Gate(scalars, acts, gates, [torch.sigmoid], gated)
    return gate, gate.irreps_in


class EdgeTensorProduct(nn.Module):
    """``x_j (x) Y(r_ij)`` with per-edge 'uvu' weights from a radial MLP (NequIP's convolution).

    Paths that produce the same irrep from inputs of the same multiplicity write into one output
    slot (e3nn sums them), each path keeping its own per-edge, per-channel weight: the output is as
    wide as the features, not as wide as the number of paths, which keeps CPU training fast.
    """

    def __init__(self, irreps_in: o3.Irreps, irreps_sh: o3.Irreps, irreps_target: o3.Irreps, num_radial: int,
                 radial_hidden: int):
        super().__init__()
        allowed = {ir for _, ir in irreps_target}
        slots, instructions = {}, []
        for i, (mul, ir_in) in enumerate(irreps_in):
            for j, (_, ir_sh) in enumerate(irreps_sh):
                for ir_out in ir_in * ir_sh:
                    if ir_out in allowed:
                        slot = slots.setdefault((mul, ir_out), len(slots))
                        instructions.append((i, j, slot, "uvu", True))
        mid = o3.Irreps([(mul, ir) for (mul, ir), _ in sorted(slots.items(), key=lambda item: item[1])])
        self.irreps_out, permutation, _ = mid.sort()
        instructions = [(i, j, permutation[k], mode, train) for i, j, k, mode, train in instructions]
        self.tp = o3.TensorProduct(irreps_in, irreps_sh, self.irreps_out, instructions, shared_weights=False,
                                   internal_weights=False)
        self.radial = FullyConnectedNet([num_radial, radial_hidden, radial_hidden, self.tp.weight_numel],
                                        torch.nn.functional.silu)

    def forward(self, x: torch.Tensor, sh: torch.Tensor, radial: torch.Tensor) -> torch.Tensor:
        return self.tp(x, sh, self.radial(radial))


class Interaction(nn.Module):
    """One message-passing layer: linear, convolution summed over neighbours, linear + self connection, gate."""

    def __init__(self, irreps_in: o3.Irreps, irreps_out: o3.Irreps, irreps_sh: o3.Irreps, config: ModelConfig):
        super().__init__()
        self.linear_in = o3.Linear(irreps_in, irreps_in)
        self.conv = EdgeTensorProduct(irreps_in, irreps_sh, irreps_out, config.num_radial, config.radial_hidden)
        self.gate, gate_in = _gate_for(irreps_out)
        self.linear_out = o3.Linear(self.conv.irreps_out, gate_in)
        self.self_connection = o3.Linear(irreps_in, gate_in)
        self.norm = 1.0 / math.sqrt(config.avg_neighbors)
        self.residual = irreps_in == irreps_out

    def forward(self, x, sh, radial, src, dst):
        messages = self.conv(self.linear_in(x)[dst], sh, radial)
        summed = torch.zeros(len(x), messages.shape[1], dtype=x.dtype, device=x.device).index_add_(0, src, messages)
        out = self.gate(self.linear_out(summed * self.norm) + self.self_connection(x))
        return out + x if self.residual else out


class PairFeatures(nn.Module):
    """Features of an ordered atom pair: both atoms' features coupled to Y(r_ij), plus their tensor product."""

    def __init__(self, irreps: o3.Irreps, irreps_sh: o3.Irreps, config: ModelConfig):
        super().__init__()
        self.conv_i = EdgeTensorProduct(irreps, irreps_sh, irreps, config.num_radial, config.radial_hidden)
        self.conv_j = EdgeTensorProduct(irreps, irreps_sh, irreps, config.num_radial, config.radial_hidden)
        small = o3.Irreps([(max(1, m // 2), ir) for m, ir in irreps])
        self.down_i = o3.Linear(irreps, small)
        self.down_j = o3.Linear(irreps, small)
        self.gate, gate_in = _gate_for(irreps)
        self.product = o3.ElementwiseTensorProduct(small, small, filter_ir_out=[ir for _, ir in irreps])
        self.linear_product = o3.Linear(self.product.irreps_out, gate_in)
        self.linear_i = o3.Linear(self.conv_i.irreps_out, gate_in)
        self.linear_j = o3.Linear(self.conv_j.irreps_out, gate_in)

    def forward(self, x, sh, radial, src, dst):
        xi, xj = x[src], x[dst]
        mixed = (self.linear_i(self.conv_i(xi, sh, radial)) + self.linear_j(self.conv_j(xj, sh, radial))
                 + self.linear_product(self.product(self.down_i(xi), self.down_j(xj))))
        return self.gate(mixed)


class HamiltonianModel(nn.Module):
    """Predicts Kohn-Sham matrices for a :class:`~mlwfcalc.nn.graph.Batch`; see the module docstring."""

    def __init__(self, config: ModelConfig, dtype: torch.dtype = torch.float32):
        """Build in float64 (e3nn computes its Clebsch-Gordan tables in the default dtype), then cast."""
        super().__init__()
        with float64_default():
            self._build(config)
        self.to(dtype)

    def _build(self, config: ModelConfig) -> None:
        self.config = config
        self.layout = BasisLayout(config.basis, config.elements)
        if config.lmax < 2 * self.layout.max_l:
            raise InputError(f"lmax={config.lmax} is too small for basis {config.basis} (highest orbital l "
                             f"{self.layout.max_l}): blocks need L up to {2 * self.layout.max_l}")
        hidden = config.hidden_irreps()
        self.irreps_sh = o3.Irreps.spherical_harmonics(config.lmax)
        self.register_buffer("element_index", torch.full((max(config.elements) + 1,), -1, dtype=torch.long))
        self.element_index[config.elements] = torch.arange(len(config.elements))
        self.embedding = o3.Linear(o3.Irreps(f"{len(config.elements)}x0e"), o3.Irreps(f"{config.channels}x0e"))
        self.radial = BesselBasis(config.num_radial, config.cutoff)
        layers, irreps_in = [], o3.Irreps(f"{config.channels}x0e")
        for _ in range(config.num_layers):
            layers.append(Interaction(irreps_in, hidden, self.irreps_sh, config))
            irreps_in = hidden
        self.layers = nn.ModuleList(layers)
        self.pair = PairFeatures(hidden, self.irreps_sh, config)
        lay = {z: self.layout.element(z) for z in config.elements}
        self.onsite = nn.ModuleDict({str(z): BlockHead(hidden, lay[z], lay[z]) for z in config.elements})
        self.offsite = nn.ModuleDict({f"{zi}-{zj}": BlockHead(hidden, lay[zi], lay[zj])
                                      for zi in config.elements for zj in config.elements})

    def _geometry(self, batch: Batch):
        positions = to_model_frame(batch.positions)
        vectors = positions[batch.edge_dst] - positions[batch.edge_src]
        r = vectors.norm(dim=1)
        sh = o3.spherical_harmonics(self.irreps_sh, vectors, normalize=True, normalization="component")
        return sh, self.radial(r)

    def features(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Node features ``(N, hidden.dim)`` and pair features ``(E, hidden.dim)``."""
        sh, radial = self._geometry(batch)
        onehot = torch.nn.functional.one_hot(self.element_index[batch.numbers], len(self.config.elements))
        x = self.embedding(onehot.to(batch.positions.dtype))
        for layer in self.layers:
            x = layer(x, sh, radial, batch.edge_src, batch.edge_dst)
        return x, self.pair(x, sh, radial, batch.edge_src, batch.edge_dst)

    def _groups(self, batch: Batch):
        """Yield ``(head, rows (n,), row atoms, column atoms)`` for every on-site and pair group."""
        for z, head in self.onsite.items():
            atoms = torch.nonzero(batch.numbers == int(z), as_tuple=True)[0]
            if len(atoms):
                yield head, atoms, atoms, atoms, "node"
        zi_all, zj_all = batch.numbers[batch.edge_src], batch.numbers[batch.edge_dst]
        for key, head in self.offsite.items():
            zi, zj = map(int, key.split("-"))
            edges = torch.nonzero((zi_all == zi) & (zj_all == zj), as_tuple=True)[0]
            if len(edges):
                yield head, edges, batch.edge_src[edges], batch.edge_dst[edges], "edge"

    @staticmethod
    def _flat_index(batch: Batch, head: BlockHead, atoms_i, atoms_j) -> torch.Tensor:
        """Flat positions ``(n, nao_i, nao_j)`` of blocks inside the ``(B, nmax, nmax)`` output."""
        nmax = batch.nmax
        rows = batch.ao_offset[atoms_i, None] + torch.arange(head.shape[0], device=atoms_i.device)
        cols = batch.ao_offset[atoms_j, None] + torch.arange(head.shape[1], device=atoms_i.device)
        base = batch.molecule[atoms_i] * nmax * nmax
        return base[:, None, None] + rows[:, :, None] * nmax + cols[:, None, :]

    def forward(self, batch: Batch) -> torch.Tensor:
        """Kohn-Sham matrices ``(B, nmax, nmax)``, Hartree, PySCF AO order, zero padded, symmetric."""
        return self.fock_and_nodes(batch)[0]

    def fock_and_nodes(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Kohn-Sham matrices ``(B, nmax, nmax)`` and the last layer's node features ``(N, hidden.dim)``.

        The node features (irreps :meth:`ModelConfig.hidden_irreps`) feed the energy head through
        their invariants (:func:`mlwfcalc.energy.node_invariants`); one pass gives both.
        """
        nodes, pairs = self.features(batch)
        values, index = [], []
        for head, rows, atoms_i, atoms_j, kind in self._groups(batch):
            values.append(head((nodes if kind == "node" else pairs)[rows]).reshape(-1))
            index.append(self._flat_index(batch, head, atoms_i, atoms_j).reshape(-1))
        nmax = batch.nmax
        flat = nodes.new_zeros(batch.num_molecules * nmax * nmax).index_put((torch.cat(index),), torch.cat(values))
        fock = flat.reshape(batch.num_molecules, nmax, nmax)
        fock = 0.5 * (fock + fock.transpose(1, 2))
        if self.config.target == "fock-hcore":
            if batch.hcore is None:
                raise ValueError("this model learns F - H_core: the batch needs hcore")
            fock = fock + batch.hcore.to(fock.dtype)
        return fock, nodes

    @torch.no_grad()
    def fit_normalisation(self, batch: Batch, targets: torch.Tensor) -> None:
        """Fit every head's shift and scale to target matrices ``(B, nmax, nmax)`` of a (large) batch.

        ``targets`` is what the heads predict: F, or F - H_core for a delta-learning model.
        """
        flat = targets.reshape(-1)
        for head, rows, atoms_i, atoms_j, _ in self._groups(batch):
            blocks = flat[self._flat_index(batch, head, atoms_i, atoms_j)]
            head.fit_normalisation(blocks)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
