"""Nuclear derivatives at a fixed AO density matrix, from PySCF's derivative integrals: what the exact forces
of the functional routes (:mod:`mlwfcalc.functional`) and the derivative of the zeroth-step Hamiltonian
(:mod:`mlwfcalc.baseline`) are made of. Atomic units: Hartree/Bohr."""

from __future__ import annotations

import numpy as np


def fixed_density_gradient(mf, dm: np.ndarray, grid_response: bool = True) -> np.ndarray:
    """``dE_KS[P]/dR`` at fixed AO density matrix ``dm`` ``(nao, nao)``: ``(n_atoms, 3)`` Hartree/Bohr.

    The basis functions (and, with ``grid_response``, the integration grid) move with their atoms; ``dm``
    does not. Nuclear repulsion included; no energy-weighted density term. ``mf`` may be density-fitted (RI-J:
    the auxiliary basis's derivative is included).
    """
    grad = mf.nuc_grad_method()
    grad.grid_response = grid_response
    mol = mf.mol
    hcore_deriv = grad.hcore_generator(mol)
    vhf = grad.get_veff(mol, dm)  # (3, nao, nao): nabla on the bra
    de = np.zeros((mol.natm, 3))
    for atom, (_, _, p0, p1) in enumerate(mol.aoslice_by_atom()):
        de[atom] += np.einsum("xij,ij->x", hcore_deriv(atom), dm)
        de[atom] += 2 * np.einsum("xij,ij->x", vhf[:, p0:p1], dm[p0:p1])
        if grid_response:
            de[atom] += vhf.exc1_grid[atom]
        if getattr(vhf, "aux", None) is not None:  # RI-J: the auxiliary basis moves with its atoms too
            de[atom] += vhf.aux[atom]
    return de + grad.grad_nuc()


def overlap_term(mol, weighted: np.ndarray) -> np.ndarray:
    """``tr(W dS/dR_A)`` per atom, ``(n_atoms, 3)``, for a symmetric ``W`` ``(nao, nao)``."""
    s1 = -mol.intor("int1e_ipovlp", comp=3)  # (3, nao, nao): d/dR on the bra
    out = np.zeros((mol.natm, 3))
    for atom, (_, _, p0, p1) in enumerate(mol.aoslice_by_atom()):
        out[atom] = 2 * np.einsum("xij,ij->x", s1[:, p0:p1], weighted[p0:p1])
    return out
