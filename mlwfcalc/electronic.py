"""From a Kohn-Sham matrix to orbitals and densities (torch, batched, atomic units).

``F C = S C e`` is solved by Lowdin orthogonalisation with the exact overlap: ``X = U s^-1/2``
over the overlap eigenvectors whose eigenvalue exceeds a threshold (near-linear dependencies are
dropped with a warning), ``F' = X^T F X``, ``eigh``, ``C = X C'``. Closed shell: ``P = 2 C_occ C_occ^T``.

An error ``d`` of a predicted F along an overlap eigenvector ``u_k`` enters ``F'`` as ``d / s_k``: where
the basis is nearly linearly dependent (def2-SVP on malondialdehyde: smallest ``s_k`` about 0.002) a
small AO-basis error can pull a spurious orbital, made of those near-null directions, below the LUMO.
Every solve therefore records each orbital's weight on the eigenvectors with ``s_k <``
:data:`NEAR_NULL_OVERLAP` (the squared components of ``C'`` there, 0 to 1); converged Kohn-Sham orbitals
carry almost none, so an occupied orbital above :data:`SPURIOUS_WEIGHT` is an artefact of the F error.

A model's orbitals can instead be solved in the basis's well-conditioned subspace (``subspace``: the
overlap eigenvectors with ``s_k >= subspace`` only, as canonical orthogonalisation drops linear
dependencies, but silently and by design): the F error there can no longer make spurious orbitals, at the
cost of the converged orbitals' small weight on the dropped directions (a model's card measures both).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

#: Overlap eigenvalues below this are treated as linear dependencies and projected out.
OVERLAP_THRESHOLD = 1e-7
#: Overlap eigenvalues below this span the basis's near-linear dependencies (see the module docstring).
NEAR_NULL_OVERLAP = 1e-2
#: An occupied orbital with more weight than this on the near-linear dependencies is spurious. Measured on
#: PBE/def2-SVP malondialdehyde at 300-900 K: converged Kohn-Sham orbitals at most 5e-4; the spurious
#: orbitals of a model trained on F alone 0.04-0.78, with orbital-energy errors of 2,000-100,000 micro-Hartree.
SPURIOUS_WEIGHT = 0.02


@dataclass
class Orbitals:
    """Solution of ``F C = S C e`` for one molecule (or a batch of equal-size ones: a leading batch axis).

    Attributes:
        energies: ``(nmo,)`` orbital energies, Hartree, ascending.
        coefficients: ``(nao, nmo)`` MO coefficients in the AO basis (columns are orbitals).
        occupations: ``(nmo,)`` 2 for the lowest ``n_electrons / 2`` orbitals, else 0.
        near_null_weight: ``(nmo,)`` each orbital's weight (0 to 1) on the overlap eigenvectors with
            eigenvalue below :data:`NEAR_NULL_OVERLAP`.
    """

    energies: torch.Tensor
    coefficients: torch.Tensor
    occupations: torch.Tensor
    near_null_weight: torch.Tensor

    @property
    def n_occupied(self) -> int:
        return int((self.occupations > 0).sum())

    def spurious_occupied(self) -> list[int]:
        """:func:`spurious_occupied` of one molecule's orbitals."""
        return spurious_occupied(self.near_null_weight, self.n_occupied)

    def density_matrix(self) -> torch.Tensor:
        """``(nao, nao)`` closed-shell AO density matrix ``P = C diag(occ) C^T``."""
        return (self.coefficients * self.occupations.unsqueeze(-2)) @ self.coefficients.transpose(-1, -2)


def spurious_occupied(near_null_weight, n_occupied: int) -> list[int]:
    """Indices of the first ``n_occupied`` orbitals whose weight on the basis's near-linear dependencies
    (``near_null_weight``, ``(nmo,)``, see :class:`Orbitals`) exceeds :data:`SPURIOUS_WEIGHT`: artefacts
    of an F error along those directions."""
    return [i for i in range(n_occupied) if float(near_null_weight[i]) > SPURIOUS_WEIGHT]


class SpuriousOrbitalWarning(UserWarning):
    """A predicted F gave occupied orbitals made of the basis's near-linear dependencies (see the module docstring)."""


class LinearDependencyInBatch(ValueError):
    """A batched solve met an overlap with linear dependencies (molecules would differ in orbital count)."""


def lowdin_orthogonaliser(overlap: torch.Tensor, threshold: float = OVERLAP_THRESHOLD, subspace: float = 0.0
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(X, s)``: ``X`` ``(..., nao, nmo)`` with ``X^T S X = 1``, its columns the overlap eigenvectors
    divided by ``sqrt(s)``, and ``s`` ``(..., nmo)`` their eigenvalues. Drops overlap eigenvalues below
    ``threshold`` with a warning (linear dependencies), and those below ``subspace`` silently (the
    well-conditioned subspace of the module docstring, asked for).

    A batch ``(B, nao, nao)`` raises :class:`LinearDependencyInBatch` when an overlap in it has eigenvalues
    below ``threshold``, or when its molecules would keep different numbers of directions: solve those one by one.
    """
    s, u = torch.linalg.eigh(overlap)
    dependent = int((s <= threshold).sum())
    dropped = (s < subspace) | (s <= threshold)  # eigh sorts s ascending: the dropped directions come first
    counts = dropped.sum(-1).reshape(-1)
    if dependent and overlap.dim() > 2:
        raise LinearDependencyInBatch("an overlap in the batch is nearly singular: solve its molecule alone")
    if overlap.dim() > 2 and bool((counts != counts[0]).any()):
        raise LinearDependencyInBatch(f"the batch's molecules keep different numbers of overlap directions above "
                                      f"{subspace:g}: solve them one by one")
    if dependent:
        warnings.warn(f"overlap matrix is nearly singular (smallest eigenvalue {float(s.min()):.2e}): "
                      f"{dependent} linear combination(s) of AOs dropped", RuntimeWarning, stacklevel=2)
    first = int(counts[0])
    return u[..., first:] / s[..., first:].sqrt().unsqueeze(-2), s[..., first:]


def solve_orbitals(fock: torch.Tensor, overlap: torch.Tensor, n_electrons: int,
                   threshold: float = OVERLAP_THRESHOLD, subspace: float = 0.0) -> Orbitals:
    """Closed-shell orbitals from ``fock`` and ``overlap``.

    Both ``(nao, nao)``, or ``(B, nao, nao)`` for a batch of equal-size molecules. ``subspace``: solve in the
    overlap eigenvectors with eigenvalue ``>= subspace`` only (module docstring); the orbitals then number
    ``nmo = nao`` minus the directions dropped, and carry no weight on those.
    """
    if n_electrons % 2:
        raise ValueError(f"{n_electrons} electrons: closed-shell orbitals need an even count")
    x, s = lowdin_orthogonaliser(overlap, threshold, subspace)
    if x.shape[-1] <= n_electrons // 2:
        raise ValueError(f"only {x.shape[-1]} overlap directions kept above {max(threshold, subspace):g}, too few for "
                         f"{n_electrons // 2} occupied orbitals and a LUMO: lower the subspace threshold")
    energies, c_orth = torch.linalg.eigh(x.transpose(-1, -2) @ fock @ x)
    occupations = torch.zeros_like(energies)
    occupations[..., : n_electrons // 2] = 2.0
    near_null = (s < NEAR_NULL_OVERLAP).to(c_orth.dtype).unsqueeze(-1)  # rows of C' are overlap eigenvectors
    return Orbitals(energies=energies, coefficients=x @ c_orth, occupations=occupations,
                    near_null_weight=(near_null * c_orth.square()).sum(-2))


def energy_weighted_density_matrix(orbitals: Orbitals) -> torch.Tensor:
    """``W = C diag(occ * e) C^T`` ``(nao, nao)``, Hartree; ``dE_band/dS = -W``."""
    c = orbitals.coefficients
    return (c * (orbitals.occupations * orbitals.energies)) @ c.T


class _BandEnergy(torch.autograd.Function):
    """``E_band = sum_i occ_i e_i = tr(P F)`` with the exact Hellmann-Feynman backward.

    ``dE/dF = P`` and ``dE/dS = -W`` hold for the occupied subspace as a whole, so the gradient stays
    finite when eigenvalues are degenerate (where ``eigh``'s own backward divides by zero).
    """

    @staticmethod
    def forward(ctx, fock, overlap, n_electrons, threshold):
        with torch.no_grad():
            orbitals = solve_orbitals(fock, overlap, n_electrons, threshold)
            density = orbitals.density_matrix()
            weighted = energy_weighted_density_matrix(orbitals)
        ctx.save_for_backward(density, weighted)
        return (orbitals.occupations * orbitals.energies).sum()

    @staticmethod
    def backward(ctx, grad):
        density, weighted = ctx.saved_tensors
        return grad * density, -grad * weighted, None, None


def band_energy(fock: torch.Tensor, overlap: torch.Tensor, n_electrons: int,
                threshold: float = OVERLAP_THRESHOLD) -> torch.Tensor:
    """Closed-shell band energy ``2 sum_occ e_i`` (Hartree), differentiable in ``fock`` and ``overlap``."""
    return _BandEnergy.apply(fock, overlap, n_electrons, threshold)


def dipole_moment(mol, density: torch.Tensor) -> torch.Tensor:
    """Dipole ``(3,)`` in e*Bohr about the origin: ``sum_A Z_A R_A - tr(P r)`` (PySCF integrals)."""
    with mol.with_common_orig((0.0, 0.0, 0.0)):
        r = torch.as_tensor(mol.intor_symmetric("int1e_r", comp=3), dtype=density.dtype, device=density.device)
    nuclear = torch.as_tensor(mol.atom_charges() @ mol.atom_coords(), dtype=density.dtype, device=density.device)
    return nuclear - torch.einsum("xij,ji->x", r, density)


def _per_atom(mol, diagonal: torch.Tensor) -> torch.Tensor:
    """Sum an AO-diagonal ``(nao,)`` over each atom's AOs -> ``(n_atoms,)``."""
    slices = mol.aoslice_by_atom()
    return torch.stack([diagonal[int(s[2]):int(s[3])].sum() for s in slices])


def mulliken_charges(mol, density: torch.Tensor, overlap: torch.Tensor) -> torch.Tensor:
    """Mulliken charges ``(n_atoms,)`` in e: ``Z_A - sum_{mu in A} (P S)_{mu mu}``."""
    z = torch.as_tensor(mol.atom_charges(), dtype=density.dtype, device=density.device)
    return z - _per_atom(mol, (density * overlap).sum(1))


def lowdin_charges(mol, density: torch.Tensor, overlap: torch.Tensor) -> torch.Tensor:
    """Lowdin charges ``(n_atoms,)`` in e: ``Z_A - sum_{mu in A} (S^1/2 P S^1/2)_{mu mu}``."""
    s, u = torch.linalg.eigh(overlap)
    half = (u * s.clamp_min(0).sqrt()) @ u.T
    z = torch.as_tensor(mol.atom_charges(), dtype=density.dtype, device=density.device)
    return z - _per_atom(mol, torch.diagonal(half @ density @ half))


def electron_density(mol, density, points_bohr) -> "np.ndarray":
    """Electron density (electrons/Bohr^3) ``(n_points,)`` of AO density matrix ``density`` at ``(n_points, 3)`` Bohr."""
    import numpy as np
    from pyscf.dft import numint

    ao = numint.eval_ao(mol, np.asarray(points_bohr, dtype=float))
    return numint.eval_rho(mol, ao, np.asarray(density, dtype=float))


def write_density_cube(mol, density, path, spacing_bohr: float = 0.1, margin_bohr: float = 5.0) -> None:
    """Write the electron density as a Gaussian cube file (PySCF ``cubegen``), Bohr grid ``spacing_bohr``."""
    import numpy as np
    from pyscf.tools import cubegen

    cubegen.density(mol, str(path), np.asarray(density, dtype=float), resolution=spacing_bohr, margin=margin_bohr)


def write_orbital_cube(mol, coefficients, index: int, path, spacing_bohr: float = 0.1,
                       margin_bohr: float = 5.0) -> None:
    """Write molecular orbital ``index`` (0-based column of ``coefficients``) as a Gaussian cube file."""
    import numpy as np
    from pyscf.tools import cubegen

    coefficients = np.asarray(coefficients, dtype=float)
    if not 0 <= index < coefficients.shape[1]:
        raise IndexError(f"orbital index {index} outside 0..{coefficients.shape[1] - 1}")
    cubegen.orbital(mol, str(path), coefficients[:, index], resolution=spacing_bohr, margin=margin_bohr)


class _Overlap(torch.autograd.Function):
    """AO overlap of ``mol`` as a function of its nuclear positions, with PySCF's exact derivative."""

    @staticmethod
    def forward(ctx, positions, mol):
        ctx.mol = mol
        return torch.as_tensor(mol.intor_symmetric("int1e_ovlp"), dtype=positions.dtype, device=positions.device)

    @staticmethod
    def backward(ctx, grad):
        mol = ctx.mol
        # <d mu / dr | nu>: the derivative of S_{mu nu} by the position of mu's atom is minus this
        ip = torch.as_tensor(mol.intor("int1e_ipovlp", comp=3), dtype=grad.dtype, device=grad.device)
        per_ao = -(ip * (grad + grad.T)).sum(2)  # (3, nao)
        starts = torch.as_tensor(mol.aoslice_by_atom()[:, 2], device=grad.device)
        atom_of_ao = torch.repeat_interleave(torch.arange(mol.natm, device=grad.device),
                                             torch.diff(torch.cat([starts, starts.new_tensor([mol.nao])])))
        forces = torch.zeros(mol.natm, 3, dtype=grad.dtype, device=grad.device).index_add_(0, atom_of_ao, per_ao.T)
        return forces, None


def overlap_matrix(mol, positions: torch.Tensor) -> torch.Tensor:
    """``S`` ``(nao, nao)`` of ``mol``, differentiable in ``positions`` ``(n_atoms, 3)`` (Bohr).

    ``mol`` must sit at ``positions``; the derivative uses PySCF's ``int1e_ipovlp`` (exact, no finite
    differences). Use it for forces through anything that depends on the overlap.
    """
    if positions.shape != (mol.natm, 3):
        raise ValueError(f"positions {tuple(positions.shape)} do not match the Mole's {mol.natm} atoms")
    return _Overlap.apply(positions, mol)


def density_matrix(fock: torch.Tensor, overlap: torch.Tensor, n_electrons: int, tolerance: float = 1e-13,
                   max_iterations: int = 100) -> torch.Tensor:
    """Closed-shell density matrix ``(nao, nao)`` as a smooth function of F and S, for training on forces.

    ``S = L L^T`` (Cholesky), ``F' = L^-1 F L^-T``, ``P' = 1 - sign(F' - mu)`` by Newton-Schulz
    iteration (``X <- X (3 - X^2) / 2``) with ``mu`` mid-gap, then ``P = L^-T P' L^-1``. Only matrix
    products and triangular solves: autograd differentiates it to any order, and the result depends on
    the occupied subspace alone, so degenerate orbital energies do no harm (``eigh``'s backward divides
    by their differences). Needs a HOMO-LUMO gap; converges in about log2(spectral width / gap) + 5 steps.
    """
    if n_electrons % 2:
        raise ValueError(f"{n_electrons} electrons: a closed-shell density needs an even count")
    n_occ = n_electrons // 2
    with torch.no_grad():
        energies = solve_orbitals(fock, overlap, n_electrons).energies
        gap = float(energies[n_occ] - energies[n_occ - 1])
        if gap < 1e-8:
            raise ValueError(f"HOMO-LUMO gap {gap:.2e} Hartree: the closed-shell density is not defined")
        mu = 0.5 * (energies[n_occ] + energies[n_occ - 1])
        width = torch.maximum(energies[-1] - mu, mu - energies[0])
    identity = torch.eye(len(fock), dtype=fock.dtype, device=fock.device)
    lower = torch.linalg.cholesky(overlap)
    half = torch.linalg.solve_triangular(lower, fock, upper=False)
    orthogonal = torch.linalg.solve_triangular(lower, half.T, upper=False)  # L^-1 F L^-T (symmetric)
    sign = (orthogonal - mu * identity) / width
    tolerance = max(tolerance, 100 * torch.finfo(fock.dtype).eps)
    for _ in range(max_iterations):
        previous = sign
        sign = 0.5 * sign @ (3 * identity - sign @ sign)
        if float((sign - previous).detach().abs().max()) < tolerance:
            break
    projector = identity - sign  # 2 x the occupied projector in the orthonormal basis
    half = torch.linalg.solve_triangular(lower.T, projector, upper=True)
    return torch.linalg.solve_triangular(lower.T, half.T, upper=True)


class _KeptProjector(torch.autograd.Function):
    """``Pi = U_k U_k^T`` ``(nao, nao)``, the Euclidean projector onto the overlap eigenvectors with eigenvalue
    ``>= subspace``, with the exact backward of eigenvector perturbation theory restricted to kept-dropped
    pairs (the only ones that move the subspace), so degenerate eigenvalues inside either part do no harm."""

    @staticmethod
    def forward(ctx, overlap, subspace):
        s, u = torch.linalg.eigh(overlap)
        kept = s >= subspace
        ctx.save_for_backward(s[kept], u[:, kept], s[~kept], u[:, ~kept])
        return u[:, kept] @ u[:, kept].T

    @staticmethod
    def backward(ctx, grad):
        s_kept, u_kept, s_dropped, u_dropped = ctx.saved_tensors
        symmetric = 0.5 * (grad + grad.T)
        weights = (u_dropped.T @ symmetric @ u_kept) / (s_kept[None, :] - s_dropped[:, None])
        half = u_dropped @ weights @ u_kept.T
        return half + half.T, None


def subspace_density_matrix(fock: torch.Tensor, overlap: torch.Tensor, n_electrons: int,
                            subspace: float = 0.0) -> torch.Tensor:
    """Closed-shell density ``(nao, nao)`` of F solved in the overlap's well-conditioned subspace (eigenvalues
    ``>= subspace``, as :func:`solve_orbitals` with ``subspace``), a smooth function of F and S for exact
    forces: the subspace is ``Pi(S)`` (:class:`_KeptProjector`), a basis of it ``B = Pi U_0`` (``U_0`` the kept
    eigenvectors, held fixed: only the span matters), orthonormalised by Cholesky, ``X = B L^-T`` with
    ``L L^T = B^T S B``, and ``P = X P'(X^T F X) X^T`` with ``P'`` from :func:`density_matrix`. ``subspace=0``
    is :func:`density_matrix` in the whole basis."""
    if subspace <= 0:
        return density_matrix(fock, overlap, n_electrons)
    with torch.no_grad():
        s, u = torch.linalg.eigh(overlap)
        start = u[:, s >= subspace]
    basis = _KeptProjector.apply(overlap, subspace) @ start
    lower = torch.linalg.cholesky(basis.T @ overlap @ basis)
    x = torch.linalg.solve_triangular(lower, basis.T, upper=False).T  # B L^-T
    orthogonal = x.T @ fock @ x
    inner = density_matrix(orthogonal, torch.eye(len(orthogonal), dtype=fock.dtype, device=fock.device), n_electrons)
    return x @ inner @ x.T
