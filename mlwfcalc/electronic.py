"""From a Kohn-Sham matrix to orbitals and densities (torch, batched, atomic units).

``F C = S C e`` is solved by Lowdin orthogonalisation with the exact overlap: ``X = U s^-1/2``
over the overlap eigenvectors whose eigenvalue exceeds a threshold (near-linear dependencies are
dropped with a warning), ``F' = X^T F X``, ``eigh``, ``C = X C'``. Closed shell: ``P = 2 C_occ C_occ^T``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

#: Overlap eigenvalues below this are treated as linear dependencies and projected out.
OVERLAP_THRESHOLD = 1e-7


@dataclass
class Orbitals:
    """Solution of ``F C = S C e`` for one molecule.

    Attributes:
        energies: ``(nmo,)`` orbital energies, Hartree, ascending.
        coefficients: ``(nao, nmo)`` MO coefficients in the AO basis (columns are orbitals).
        occupations: ``(nmo,)`` 2 for the lowest ``n_electrons / 2`` orbitals, else 0.
    """

    energies: torch.Tensor
    coefficients: torch.Tensor
    occupations: torch.Tensor

    @property
    def n_occupied(self) -> int:
        return int((self.occupations > 0).sum())

    def density_matrix(self) -> torch.Tensor:
        """``(nao, nao)`` closed-shell AO density matrix ``P = C diag(occ) C^T``."""
        return (self.coefficients * self.occupations) @ self.coefficients.T


def lowdin_orthogonaliser(overlap: torch.Tensor, threshold: float = OVERLAP_THRESHOLD) -> torch.Tensor:
    """``X`` ``(nao, nmo)`` with ``X^T S X = 1``; drops overlap eigenvalues below ``threshold`` with a warning."""
    s, u = torch.linalg.eigh(overlap)
    keep = s > threshold
    if not bool(keep.all()):
        warnings.warn(f"overlap matrix is nearly singular (smallest eigenvalue {float(s.min()):.2e}): "
                      f"{int((~keep).sum())} linear combination(s) of AOs dropped", RuntimeWarning, stacklevel=2)
    return u[:, keep] / s[keep].sqrt()


def solve_orbitals(fock: torch.Tensor, overlap: torch.Tensor, n_electrons: int,
                   threshold: float = OVERLAP_THRESHOLD) -> Orbitals:
    """Closed-shell orbitals of one molecule from ``fock`` and ``overlap`` ``(nao, nao)``."""
    if n_electrons % 2:
        raise ValueError(f"{n_electrons} electrons: closed-shell orbitals need an even count")
    x = lowdin_orthogonaliser(overlap, threshold)
    energies, c_orth = torch.linalg.eigh(x.T @ fock @ x)
    occupations = torch.zeros_like(energies)
    occupations[: n_electrons // 2] = 2.0
    return Orbitals(energies=energies, coefficients=x @ c_orth, occupations=occupations)
