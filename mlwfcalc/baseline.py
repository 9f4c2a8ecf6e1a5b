"""The zeroth-step Hamiltonian H0 (issue 42): the Kohn-Sham matrix of a superposition of atomic densities,
``H0(R) = F_KS[P_0](R)``, the baseline a model may learn its correction to (``ModelConfig.target =
"fock-h0"``: the network predicts ``F - H0``), as SPHNet and QHFlow2 do with PySCF's minao guess.

``P_0`` is PySCF's minao density of each atom alone (``init_guess_by_minao`` of the isolated atom, in the
molecular basis, scaled to the atom's electron count), placed block-diagonally: it does not depend on the
geometry (the molecular minao guess does, through its projection onto the whole molecule's basis), and its H0
is a little closer to the converged F than the molecular minao guess's (mean absolute error over the matrix on
ten of organic's test frames, RI-J at grid level 0: 3,074 micro-Hartree, 1,745-7,555, against minao's 3,335;
PySCF's spherically averaged "atom" guess: 5,700-20,000; H_core: about 650,000). H0 then moves with the atoms only
through the integrals, and its derivative is exact and cheap: for a symmetric matrix ``X``,
``tr(X dH0/dR) = d/de g(P_0 + e X)`` at ``e = 0``, with ``g`` the electronic nuclear derivative at fixed AO
density (:func:`~mlwfcalc.derivatives.fixed_density_gradient` less the nuclear repulsion), a central difference
of step :data:`DENSITY_STEP` (exact for the linear H_core and quadratic Coulomb parts). So forces through an H0
model, including the functional routes' exact forces, stay the exact derivative of what the model predicts.

H0 is built at its own settings (:class:`ZerothStepSettings`: grid level and RI-J; the functional and basis are
the model's), recorded in the model's ``config.json``: one Fock build per geometry.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .derivatives import fixed_density_gradient
from .validation import InputError

#: Step (in units of the backward's matrix X) of the central difference that gives ``tr(X dH0/dR)``.
DENSITY_STEP = 1e-3


@dataclass(frozen=True)
class ZerothStepSettings:
    """How H0 is built (recorded in ``config.json`` under the network's ``zeroth_step``).

    Attributes:
        xc: the functional (the model's labels', set by the trainer).
        grid_level: PySCF ``grids.level`` of H0's XC integration (0-9).
        ri_j: the Coulomb matrix density-fitted (PySCF's default auxiliary basis for the orbital basis).
    """

    xc: str = "pbe"
    grid_level: int = 0
    ri_j: bool = True

    def __post_init__(self):
        if not 0 <= int(self.grid_level) <= 9:
            raise InputError(f"zeroth_step grid_level {self.grid_level}: choose 0-9")

    def to_dict(self) -> dict:
        return asdict(self)

    def make_scf(self, mol):
        """The quiet RKS object whose Fock build gives H0 for ``mol``."""
        from pyscf import dft

        mf = dft.RKS(mol, xc=self.xc)
        mf.grids.level = int(self.grid_level)
        mf.verbose = 0
        return mf.density_fit() if self.ri_j else mf


def atomic_density(mol) -> np.ndarray:
    """``P_0`` ``(nao, nao)``: each atom's own minao density (PySCF's guess for the isolated neutral atom, in
    ``mol``'s basis), block diagonal in the atoms; cached per element and basis."""
    import scipy.linalg

    return scipy.linalg.block_diag(*[_atom_density(mol.atom_pure_symbol(i), mol._basis[mol.atom_symbol(i)])
                                     for i in range(mol.natm)])


_ATOM_DENSITIES: dict[tuple[str, str], np.ndarray] = {}


def _atom_density(symbol: str, basis: list) -> np.ndarray:
    """The minao density of the isolated neutral atom ``symbol`` in ``basis`` (PySCF's internal format), scaled to
    its electron count."""
    key = (symbol, json.dumps(basis))
    if key not in _ATOM_DENSITIES:
        from pyscf import gto
        from pyscf.scf import hf

        atom = gto.M(atom=[(symbol, (0.0, 0.0, 0.0))], basis={symbol: basis}, spin=gto.charge(symbol) % 2, verbose=0)
        density = np.asarray(hf.init_guess_by_minao(atom))
        # the projection onto the basis loses a little charge (0.1 % in def2-SVP): a neutral atom again
        _ATOM_DENSITIES[key] = density * atom.nelectron / np.trace(density @ atom.intor("int1e_ovlp"))
    return _ATOM_DENSITIES[key]


def _electronic_gradient(mf, dm: np.ndarray) -> np.ndarray:
    """``dE_el[P]/dR`` ``(n_atoms, 3)`` at fixed AO density ``dm`` (no nuclear repulsion)."""
    return fixed_density_gradient(mf, dm) - mf.nuc_grad_method().grad_nuc()


class _ZerothStep(torch.autograd.Function):
    """H0 of ``mol`` as a function of its nuclear positions; the backward is the module docstring's."""

    @staticmethod
    def forward(ctx, positions, mol, settings):
        mf = settings.make_scf(mol)
        density = atomic_density(mol)
        h0 = mf.get_fock(dm=density, h1e=mf.get_hcore(), vhf=mf.get_veff(mol, density))
        ctx.mf, ctx.density = mf, density
        return torch.as_tensor(h0, dtype=positions.dtype, device=positions.device)

    @staticmethod
    def backward(ctx, grad):
        x = grad.detach().to("cpu", torch.float64).numpy()
        x = 0.5 * (x + x.T)  # H0 is symmetric: only the symmetric part of the incoming gradient counts
        scale = max(np.abs(x).max(), 1e-300)
        step = DENSITY_STEP / scale
        plus = _electronic_gradient(ctx.mf, ctx.density + step * x)
        minus = _electronic_gradient(ctx.mf, ctx.density - step * x)
        return torch.as_tensor((plus - minus) / (2 * step), dtype=grad.dtype, device=grad.device), None, None


def zeroth_step_hamiltonian(mol, positions: torch.Tensor, settings: ZerothStepSettings) -> torch.Tensor:
    """H0 ``(nao, nao)`` Hartree of ``mol`` (at ``positions`` ``(n, 3)`` Bohr), differentiable in them."""
    if positions.shape != (mol.natm, 3):
        raise ValueError(f"positions {tuple(positions.shape)} do not match the Mole's {mol.natm} atoms")
    if mol.spin or mol.charge:
        raise InputError("the zeroth-step Hamiltonian is built for neutral closed shells (the model's states)")
    return _ZerothStep.apply(positions, mol, settings)
