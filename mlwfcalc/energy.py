"""Total energies and conservative forces from the predicted Kohn-Sham matrix.

    E(R) = E_nn(R) + E_el[F_theta(R), S(R) (, H_core(R))] + sum_i e(Z_i, h_i(R))

``E_el`` is one of two electronic terms (``EnergyConfig.term``), or neither:

* ``"band"``: ``tr(P F)``, the band energy of the predicted F;
* ``"half-core"``: PhiSNet's ``1/2 tr[P (H_core + F)]`` with the exact PySCF core Hamiltonian
  (exact for Hartree-Fock at self-consistency; not for DFT, where ``E_xc != 1/2 tr(P V_xc)``);
* ``"none"``: no ``E_nn`` and no ``E_el``, ``E = sum_i e(Z_i, h_i)``: a plain machine-learned
  potential on the Hamiltonian network's features. It does not inherit the errors of the
  predicted F (nor its physics), which is what a model with a rough F needs.

``P`` is the smooth closed-shell density matrix of (F, S), and ``e(Z, h)`` a learned invariant
correction per atom: an MLP on invariants ``h_i`` of the Hamiltonian network's last node features
plus a per-element reference energy. ``EnergyConfig.features`` picks the invariants: ``"scalars"``,
the 0e channels, or ``"invariants"``, those plus the squared norm of every other channel (0o and
all l > 0; 160 numbers per atom instead of 16 for channels 16, lmax 4), a richer description of
each atom's surroundings at no extra network cost. Forces are ``-dE/dR`` by autograd through
everything: the network, ``S(R)`` (PySCF ``int1e_ipovlp``) and ``H_core(R)`` (PySCF's
``hcore_generator``).
All energies in Hartree, positions in Bohr, float64 outside the network.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .electronic import density_matrix, overlap_matrix
from .validation import InputError

TERMS = ("band", "half-core", "none")
FEATURES = ("scalars", "invariants")


@dataclass
class EnergyConfig:
    """Everything needed to rebuild an :class:`EnergyHead` (saved in ``config.json`` under ``"energy"``).

    Attributes:
        term: the electronic term, ``"band"``, ``"half-core"`` or ``"none"`` (see the module docstring).
        elements: atomic numbers covered (those of the Hamiltonian network).
        features: which invariants of the node features the MLP sees, ``"scalars"`` or ``"invariants"``.
        num_scalars: their width, fixed by ``features`` and the network
            (:meth:`~mlwfcalc.nn.model.HamiltonianModel.invariant_width`).
        hidden: widths of the MLP's hidden layers.
    """

    term: str = "none"
    elements: list[int] = field(default_factory=lambda: [1, 8])
    num_scalars: int = 160
    hidden: list[int] = field(default_factory=lambda: [128, 128, 128])
    features: str = "invariants"

    def __post_init__(self):
        self.elements = sorted(int(z) for z in self.elements)
        if self.term not in TERMS:
            raise InputError(f"unknown electronic term {self.term!r}; choose one of {TERMS}")
        if self.features not in FEATURES:
            raise InputError(f"unknown energy-head features {self.features!r}; choose one of {FEATURES}")

    def to_dict(self) -> dict:
        return asdict(self)


class EnergyHead(nn.Module):
    """Atomic energy corrections ``(N,)`` Hartree from invariant features ``(N, num_scalars)``.

    ``e_i = reference[Z_i] + scale * MLP_Z((h_i - mean) / std)``: the reference energies, the
    feature standardisation and the scale are fitted once to the training set
    (:meth:`fit_statistics`), the MLP is trained. One MLP per element (stacked weights), SiLU activations.
    """

    def __init__(self, config: EnergyConfig, dtype: torch.dtype = torch.float64):
        super().__init__()
        self.config = config
        n_el = len(config.elements)
        self.register_buffer("element_index", torch.full((max(config.elements) + 1,), -1, dtype=torch.long))
        self.element_index[config.elements] = torch.arange(n_el)
        self.register_buffer("reference", torch.zeros(n_el, dtype=dtype))
        self.register_buffer("feature_mean", torch.zeros(config.num_scalars, dtype=dtype))
        self.register_buffer("feature_std", torch.ones(config.num_scalars, dtype=dtype))
        self.register_buffer("scale", torch.ones((), dtype=dtype))
        widths = [config.num_scalars, *config.hidden, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(widths[:-1], widths[1:]):  # nn.Linear's initialisation, one matrix per element
            bound = 1.0 / a ** 0.5
            self.weights.append(nn.Parameter(torch.empty(n_el, a, b, dtype=dtype).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(n_el, 1, b, dtype=dtype).uniform_(-bound, bound)))

    def forward(self, scalars: torch.Tensor, numbers: torch.Tensor) -> torch.Tensor:
        """``scalars`` ``(N, num_scalars)``, ``numbers`` ``(N,)`` -> atomic energies ``(N,)`` Hartree.

        Every element's MLP runs on every atom (a few batched matmuls, no per-element loop or
        host synchronisation); each atom keeps its own element's output.
        """
        x = ((scalars.to(self.scale.dtype) - self.feature_mean) / self.feature_std).expand(len(self.weights[0]), -1, -1)
        for k, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(bias, x, weight)
            if k < len(self.weights) - 1:
                x = torch.nn.functional.silu(x)
        kind = self.element_index[numbers]
        return self.reference[kind] + self.scale * x[:, :, 0].gather(0, kind[None, :])[0]

    @torch.no_grad()
    def fit_statistics(self, scalars: torch.Tensor, numbers: torch.Tensor, counts: torch.Tensor,
                       residual: torch.Tensor) -> None:
        """Fit reference energies and standardisation before training.

        Args:
            scalars: ``(N, num_scalars)`` invariant features of all training atoms.
            numbers: ``(N,)`` their atomic numbers.
            counts: ``(M, n_elements)`` how many atoms of each element each training molecule has.
            residual: ``(M,)`` Hartree, what the head must supply: ``E_ref - E_nn - E_el``.
        """
        self.feature_mean.copy_(scalars.mean(0))
        self.feature_std.copy_(scalars.std(0).clamp_min(1e-6))
        counts = counts.to(residual.dtype)
        reference = torch.linalg.lstsq(counts, residual[:, None]).solution[:, 0]
        self.reference.copy_(reference)
        left = residual - counts @ reference
        self.scale.copy_(left.std().clamp_min(1e-6) / counts.sum(1).mean().sqrt())


def nuclear_repulsion(numbers: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``sum_{i<j} Z_i Z_j / r_ij`` (Hartree) of one molecule; ``positions`` ``(n, 3)`` Bohr."""
    z = numbers.to(positions.dtype)
    i, j = torch.triu_indices(len(z), len(z), offset=1, device=positions.device)
    r = (positions[i] - positions[j]).norm(dim=1)
    return (z[i] * z[j] / r).sum()


class _CoreHamiltonian(torch.autograd.Function):
    """``H_core = T + V_nuc`` of ``mol`` as a function of its nuclear positions (PySCF's exact derivative)."""

    @staticmethod
    def forward(ctx, positions, mol):
        from pyscf import scf

        ctx.derivatives = scf.RHF(mol).nuc_grad_method().hcore_generator(mol)
        ctx.natm = mol.natm
        hcore = mol.intor_symmetric("int1e_kin") + mol.intor_symmetric("int1e_nuc")
        return torch.as_tensor(hcore, dtype=positions.dtype, device=positions.device)

    @staticmethod
    def backward(ctx, grad):
        import numpy as np

        derivative = torch.as_tensor(np.stack([ctx.derivatives(a) for a in range(ctx.natm)]),
                                     dtype=grad.dtype, device=grad.device)  # (natm, 3, nao, nao)
        return torch.einsum("axij,ij->ax", derivative, grad), None


def core_hamiltonian(mol, positions: torch.Tensor) -> torch.Tensor:
    """``H_core`` ``(nao, nao)`` Hartree of ``mol`` (sitting at ``positions`` ``(n, 3)`` Bohr), differentiable in them."""
    if positions.shape != (mol.natm, 3):
        raise ValueError(f"positions {tuple(positions.shape)} do not match the Mole's {mol.natm} atoms")
    return _CoreHamiltonian.apply(positions, mol)


def electronic_energy(term: str, fock: torch.Tensor, overlap: torch.Tensor, n_electrons: int,
                      hcore: torch.Tensor | None = None) -> torch.Tensor:
    """``tr(P F)`` (``"band"``) or ``1/2 tr[P (H_core + F)]`` (``"half-core"``), Hartree, differentiable.

    ``P`` is :func:`~mlwfcalc.electronic.density_matrix` (smooth in F and S, so forces and their
    derivatives for training exist even at degenerate orbital energies).
    """
    density = density_matrix(fock, overlap, n_electrons)
    if term == "band":
        return (density * fock).sum()
    if hcore is None:
        raise ValueError("the half-core term needs H_core")
    return 0.5 * (density * (hcore + fock)).sum()


def reference_terms(term: str, mol, numbers: torch.Tensor, positions: torch.Tensor,
                    fock: torch.Tensor) -> torch.Tensor:
    """``E_nn + E_el`` (Hartree) of one molecule, differentiable in ``positions`` (Bohr) and ``fock``.

    For ``term="none"`` it is zero (still a function of ``positions``, so gradients are zeros, not None).
    """
    fock = fock.to(torch.float64)
    positions = positions.to(torch.float64)
    if term == "none":
        return 0.0 * positions.sum()
    overlap = overlap_matrix(mol, positions)
    hcore = core_hamiltonian(mol, positions) if term == "half-core" else None
    return nuclear_repulsion(numbers, positions) + electronic_energy(term, fock, overlap, mol.nelectron, hcore)
