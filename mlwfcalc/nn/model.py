"""The equivariant Hamiltonian network: (Z, R) -> Kohn-Sham matrix F in PySCF AO order.

Data flow (atomic units; positions turned to the model frame (y, z, x) first; features ``(n, K, C)``
as described in :mod:`mlwfcalc.nn.so2`):

    EdgeFrames: one Wigner matrix D_e (K x K) per edge, shared by every layer below
    one-hot(Z) -> 0e channels (+ H0's on-site blocks as irreps, BlockInput, when H0 is an input) -> num_layers x Interaction:
        message_ij = D_e^T SO2Linear(D_e (A x_i + B x_j), radial(r_ij)), summed over j
        x_i <- Gate(Linear(sum) + Linear(x_i)) (+ x_i)
    node features x_i ------------------------------------------> on-site blocks F_ii
    PairFeatures: D_e^T SO2 . Gate . SO2(D_e (A x_i + B x_j), radial) (+ H0's pair blocks) --> pair blocks F_ij
    BlockHeads (one gather, one batched matmul for all types) -> F <- (F + F^T) / 2 (+ H_core)

Equivariance under rotations and inversion: every map is equivariant (per-l linear maps between
equal parities in the lab frame; C_inf_v-equivariant maps in each edge frame). Permutation
invariance from sums over edges; translation invariance from position differences. The operation
count does not depend on the number of Clebsch-Gordan paths (eSCN's O(L^3) formulation).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ..basis import BasisLayout, float64_default, to_model_frame
from ..energy import FEATURES
from ..validation import InputError
from .blocks import BlockHeads, BlockInput
from .graph import Batch
from .so2 import EdgeFrames, Gate, LinearPerL, SO2Linear, l_of_rows, m_major_order

TARGETS = ("fock", "fock-hcore", "fock-h0")


@dataclass
class ModelConfig:
    """Everything needed to rebuild the network (saved in ``config.json``).

    Attributes:
        basis: PySCF basis name of the predicted matrix.
        elements: atomic numbers the model covers.
        lmax: highest l of node and pair features (>= 2 x highest orbital l).
        channels: channels per parity: every l carries ``channels`` of parity (-1)^l and
            ``channels`` of the other parity (feature width ``2 * channels`` per coefficient).
        num_layers: message-passing layers.
        num_radial: Bessel radial basis functions.
        radial_hidden: width of the radial MLP (one MLP gives every layer's per-edge scales).
        cutoff: Bohr; atom pairs beyond it exchange no message and get a zero block.
        avg_neighbors: message normalisation (sum over neighbours / sqrt(avg_neighbors)).
        target: ``"fock"`` (predict F), ``"fock-hcore"`` (predict F - H_core, add the exact H_core) or
            ``"fock-h0"`` (predict F - H0, add the zeroth-step Hamiltonian, :mod:`mlwfcalc.baseline`).
        zeroth_step: H0's settings (:class:`~mlwfcalc.baseline.ZerothStepSettings` keys) for ``"fock-h0"``.
        zeroth_step_input: with ``"fock-h0"``, H0 is also the network's input: its on-site and pair blocks, as
            irreps (:class:`~mlwfcalc.nn.blocks.BlockInput`), are added to the first node features and to the
            pair features (as SPHNet and QHFlow2 feed their initial Hamiltonian).
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
    zeroth_step: dict | None = None
    zeroth_step_input: bool = False

    def __post_init__(self):
        self.elements = sorted(int(z) for z in self.elements)
        if self.target not in TARGETS:
            raise InputError(f"unknown target {self.target!r}; choose one of {TARGETS}")
        if self.target == "fock-h0":
            from ..baseline import ZerothStepSettings

            try:
                self.zeroth_step = ZerothStepSettings(**(self.zeroth_step or {})).to_dict()
            except TypeError as err:
                raise InputError(f"zeroth_step {self.zeroth_step}: {err}") from None
        elif self.zeroth_step is not None:
            raise InputError(f"zeroth_step settings go with target 'fock-h0', not {self.target!r}")
        if self.zeroth_step_input and self.target != "fock-h0":
            raise InputError(f"zeroth_step_input feeds H0 to the network: it goes with target 'fock-h0', not "
                             f"{self.target!r}")

    @property
    def width(self) -> int:
        """C, the channels of one feature coefficient (both parities)."""
        return 2 * self.channels

    def to_dict(self) -> dict:
        out = asdict(self)
        if out["zeroth_step"] is None:  # as models recorded before H0 existed
            del out["zeroth_step"]
        if not out["zeroth_step_input"]:  # as models recorded before H0 could be an input
            del out["zeroth_step_input"]
        return out


class BesselBasis(nn.Module):
    """``sqrt(2/c) sin(n pi r / c) / r`` times a smooth polynomial envelope that vanishes at the cutoff c."""

    def __init__(self, num_radial: int, cutoff: float, p: int = 6):
        super().__init__()
        self.cutoff, self.p = cutoff, p
        self.register_buffer("frequencies", torch.arange(1, num_radial + 1) * math.pi / cutoff, persistent=False)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """``(E,)`` Bohr -> ``(E, num_radial)``."""
        x = r / self.cutoff
        p = self.p
        envelope = (1 - (p + 1) * (p + 2) / 2 * x**p + p * (p + 2) * x ** (p + 1) - p * (p + 1) / 2 * x ** (p + 2))
        envelope = envelope * (x < 1)
        bessel = math.sqrt(2 / self.cutoff) * torch.sin(self.frequencies * r[:, None]) / r[:, None]
        return bessel * envelope[:, None]


class EdgeInput(nn.Module):
    """``D_e (A x_i + B x_j)``: both ends of an edge, mixed per l in the lab frame, rotated into the edge frame."""

    def __init__(self, lmax: int, width: int):
        super().__init__()
        self.receiver = LinearPerL(lmax, width, width, bias=False)
        self.sender = LinearPerL(lmax, width, width, bias=False)

    def forward(self, x, wigner, src, dst):
        return torch.bmm(wigner, self.receiver(x).index_select(0, src) + self.sender(x).index_select(0, dst))


class Interaction(nn.Module):
    """One message-passing layer: SO(2) convolution in edge frames, sum over neighbours, linear, gate."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        lmax, width = config.lmax, config.width
        self.edge_input = EdgeInput(lmax, width)
        self.conv = SO2Linear(lmax, width, width)
        self.linear = LinearPerL(lmax, width, width)
        self.self_connection = LinearPerL(lmax, width, width, bias=False)
        self.gate = Gate(lmax, width, config.channels, l_of_rows(lmax))
        self.norm = 1.0 / math.sqrt(config.avg_neighbors)

    def forward(self, x, wigner, radial_scale, src, dst):
        messages = torch.bmm(wigner.transpose(1, 2), self.conv(self.edge_input(x, wigner, src, dst), radial_scale))
        summed = torch.zeros_like(x).index_add_(0, src, messages)
        out = self.linear(summed * self.norm) + self.self_connection(x)
        return self.gate(out, out[:, 0, : out.shape[2] // 2]) + x


class PairFeatures(nn.Module):
    """Features ``(E, K, C)`` of ordered atom pairs: two SO(2) maps with a gate between, in each edge frame.

    The gate's invariants are all natural-parity ``m = 0`` coefficients in the edge frame: the
    features of both atoms projected on the bond, invariant under the edge's symmetry.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        lmax, width = config.lmax, config.width
        self.edge_input = EdgeInput(lmax, width)
        self.conv_in = SO2Linear(lmax, width, width)
        self.conv_out = SO2Linear(lmax, width, width)
        rows_l = l_of_rows(lmax)[m_major_order(lmax)]
        self.gate = Gate(lmax, width, (lmax + 1) * config.channels, rows_l)
        self.lmax, self.channels = lmax, config.channels

    def forward(self, x, wigner, radial_scale, src, dst):
        hidden = self.conv_in(self.edge_input(x, wigner, src, dst), radial_scale)
        invariants = hidden[:, : self.lmax + 1, : self.channels].reshape(len(hidden), (self.lmax + 1) * self.channels)
        return torch.bmm(wigner.transpose(1, 2), self.conv_out(self.gate(hidden, invariants)))


class HamiltonianModel(nn.Module):
    """Predicts Kohn-Sham matrices for a :class:`~mlwfcalc.nn.graph.Batch`; see the module docstring."""

    def __init__(self, config: ModelConfig, dtype: torch.dtype = torch.float32):
        """Build in float64 (Clebsch-Gordan tables are exact there), then cast.

        Only weights and the fitted output normalisation are saved (``state_dict``); every derived
        table is a non-persistent buffer, rebuilt exactly at each load.
        """
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
        lmax, width = config.lmax, config.width
        self.frames = EdgeFrames(lmax)
        self.radial = BesselBasis(config.num_radial, config.cutoff)
        self.layers = nn.ModuleList([Interaction(config) for _ in range(config.num_layers)])
        self.pair = PairFeatures(config)
        convs = [layer.conv for layer in self.layers] + [self.pair.conv_in]
        self.scale_widths = [conv.scale_width() for conv in convs]
        self.radial_mlp = nn.Sequential(nn.Linear(config.num_radial, config.radial_hidden), nn.SiLU(),
                                        nn.Linear(config.radial_hidden, config.radial_hidden), nn.SiLU(),
                                        nn.Linear(config.radial_hidden, sum(self.scale_widths)))
        self.embedding = nn.Linear(len(config.elements), config.channels)
        self.heads = BlockHeads(self.layout, lmax, width)
        self.zeroth_input = BlockInput(self.heads) if config.zeroth_step_input else None
        self.register_buffer("element_index", torch.full((max(config.elements) + 1,), -1, dtype=torch.long),
                             persistent=False)
        self.element_index[config.elements] = torch.arange(len(config.elements))
        self.register_buffer("l_sum", torch.as_tensor(l_of_rows(lmax))[:, None] == torch.arange(lmax + 1),
                             persistent=False)

    def features(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Node features ``(N, K, C)`` and pair features ``(E, K, C)`` (lab frame, model axes)."""
        positions = to_model_frame(batch.positions)
        src, dst = batch.edge_src, batch.edge_dst
        vectors = positions.index_select(0, dst) - positions.index_select(0, src)
        wigner = self.frames(vectors)
        scales = torch.split(self.radial_mlp(self.radial(vectors.norm(dim=1))), self.scale_widths, dim=1)
        onehot = torch.nn.functional.one_hot(self.element_index[batch.numbers], len(self.config.elements))
        scalars = self.embedding(onehot.to(positions.dtype))
        k, half = (self.config.lmax + 1) ** 2, self.config.channels
        x = torch.nn.functional.pad(scalars[:, None, :], (0, half, 0, k - 1))
        known = self._zeroth_step_features(batch, x.dtype)
        if known is not None:  # H0's on-site blocks join the first node features, its pair blocks the pairs'
            x = x + known[: len(x)]
        for layer, scale in zip(self.layers, scales):
            x = layer(x, wigner, scale, src, dst)
        pairs = self.pair(x, wigner, scales[-1], src, dst)
        return x, pairs if known is None else pairs + known[len(x):]

    def _zeroth_step_features(self, batch: Batch, dtype: torch.dtype) -> torch.Tensor | None:
        """H0's blocks as features ``(N + E, K, C)`` (nodes, then edges), or None when H0 is not an input."""
        if self.zeroth_input is None:
            return None
        if batch.baseline is None:
            raise ValueError("this model takes H0 as input: the batch needs its baseline")
        return self.zeroth_input(self.heads, batch.baseline.to(dtype), batch.block_type, batch.block_base, batch.nmax)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Kohn-Sham matrices ``(B, nmax, nmax)``, Hartree, PySCF AO order, zero padded, symmetric."""
        return self.fock_and_nodes(batch)[0]

    def fock_and_nodes(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Kohn-Sham matrices ``(B, nmax, nmax)`` and the last layer's node features ``(N, K, C)``.

        The node features feed the energy head through :meth:`invariants`; one pass gives both.
        """
        nodes, pairs = self.features(batch)
        fock = self.heads(torch.cat([nodes, pairs]), batch.block_type, batch.block_base, batch.nmax,
                          batch.num_molecules)
        fock = 0.5 * (fock + fock.transpose(1, 2))
        if self.config.target != "fock":
            if batch.baseline is None:
                raise ValueError(f"this model learns {self.config.target.replace('fock-', 'F - ')}: the batch needs "
                                 "its baseline")
            fock = fock + batch.baseline.to(fock.dtype)
        return fock, nodes

    def invariants(self, nodes: torch.Tensor, features: str) -> torch.Tensor:
        """Rotation- and inversion-invariant descriptors ``(N, width)`` of node features ``(N, K, C)``.

        ``"scalars"``: the ``channels`` 0e channels. ``"invariants"``: those, then the squared norm
        over m of every other (l, channel) (0o and l > 0), l-major: ``(lmax + 1) * C`` numbers per atom.
        Squared norms are smooth at zero, so forces through them are too.
        """
        if features not in FEATURES:
            raise InputError(f"unknown energy-head features {features!r}; choose one of {FEATURES}")
        scalars = nodes[:, 0, : self.config.channels]
        if features == "scalars":
            return scalars
        norms = ((nodes * nodes).transpose(1, 2) @ self.l_sum.to(nodes.dtype)).transpose(1, 2).reshape(len(nodes), -1)
        return torch.cat([scalars, norms[:, self.config.channels:]], dim=1)

    def invariant_width(self, features: str) -> int:
        """How many numbers per atom :meth:`invariants` gives."""
        return self.config.channels if features == "scalars" else (self.config.lmax + 1) * self.config.width

    @torch.no_grad()
    def fit_normalisation(self, batch: Batch, targets: torch.Tensor) -> None:
        """Fit every head's shift and scale to target matrices ``(B, nmax, nmax)`` of a (large) batch.

        ``targets`` is what the heads predict: F, or F - H_core for a delta-learning model.
        """
        self.heads.fit_normalisation(targets, batch.block_type, batch.block_base, batch.nmax)
        if self.zeroth_input is not None:  # and H0's, where it is an input
            self.zeroth_input.fit_normalisation(self.heads, batch.baseline, batch.block_type, batch.block_base,
                                                batch.nmax)

    def num_parameters(self) -> int:
        """Trainable numbers. ``LinearPerL`` stores a full matrix per l of which the parity mask uses
        half (the other half gets no gradient); ``SO2Linear`` stores only its free weights."""
        return sum(p.numel() for p in self.parameters())
