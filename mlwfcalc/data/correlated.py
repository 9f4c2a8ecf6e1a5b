"""Correlated labels: MP2, CCSD or CCSD(T) total energies, analytic forces and relaxed dipoles (PySCF).

Each runs on a restricted Hartree-Fock reference with every electron correlated (no frozen core).
Forces are PySCF's analytic gradients (``pyscf.grad.mp2``, ``pyscf.grad.ccsd``, and for CCSD(T)
``pyscf.grad.ccsd_t`` with the (T)-modified Lambda equations of ``pyscf.cc.ccsd_t_lambda``).

PySCF gives no relaxed one-particle density for these methods, so the dipole is the derivative of
the method's own energy in a uniform electric field, by central differences (six more energies,
field step :data:`FIELD_STEP`): the fully relaxed dipole, the one consistent with the energy and
forces. Its error is about ``FIELD_STEP**2`` times the hyperpolarisability (below 1e-6 e*Bohr for
small molecules) plus the energy tolerance over the step.
"""

from __future__ import annotations

import numpy as np

from ..theory import LevelOfTheory

#: Uniform electric field step for the finite-field dipole, atomic units (5.1e6 V/cm).
FIELD_STEP = 1e-3
#: Convergence of the coupled-cluster amplitudes and Lambda equations (energy, Hartree; amplitude norm).
CC_CONV_TOL, CC_CONV_TOL_NORMT = 1e-10, 1e-8


class NotConverged(RuntimeError):
    """An SCF, coupled-cluster or Lambda iteration that did not converge; the message says which."""


def correlated_labels(mol, settings: LevelOfTheory, dipole: bool = True
                      ) -> tuple[float, np.ndarray, np.ndarray | None, int]:
    """Energy (Hartree), forces ``(n_atoms, 3)`` (Hartree/Bohr), dipole ``(3,)`` (e*Bohr, origin 0; None with
    ``dipole=False``, which saves its six field energies) and RHF cycles of ``settings.method`` for the PySCF
    molecule ``mol``. Raises :class:`NotConverged`."""
    reference = _converged_rhf(mol, settings)
    energy, gradient = _energy_and_gradient(reference, settings.method)
    if dipole:
        dipole = field_dipole(mol, lambda field: correlated_energy(_converged_rhf(mol, settings, field),
                                                                   settings.method))
    else:
        dipole = None
    return energy, -np.asarray(gradient), dipole, int(getattr(reference, "cycles", -1))


def correlated_energy(reference, method: str) -> float:
    """Total energy (Hartree) of ``method`` on the converged RHF object ``reference``."""
    from pyscf import mp

    if method == "MP2":
        return float(mp.MP2(reference).run(verbose=0).e_tot)
    solver = _ccsd(reference)
    return float(solver.e_tot + (solver.ccsd_t() if method == "CCSD(T)" else 0.0))


def field_dipole(mol, energy_in_field, step: float = FIELD_STEP) -> np.ndarray:
    """Dipole ``(3,)`` (e*Bohr about the origin) as ``sum_A Z_A R_A - dE/dF`` by central differences.

    ``energy_in_field(field)`` is the electronic energy (Hartree) with ``field . r`` (``field`` ``(3,)``,
    atomic units) added to each electron's one-electron Hamiltonian.
    """
    derivative = np.zeros(3)
    for axis in range(3):
        field = np.zeros(3)
        field[axis] = step
        derivative[axis] = (energy_in_field(field) - energy_in_field(-field)) / (2 * step)
    nuclear = mol.atom_charges() @ mol.atom_coords()
    return nuclear - derivative


def _converged_rhf(mol, settings: LevelOfTheory, field: np.ndarray | None = None):
    """RHF at ``settings`` (optionally in a uniform field), converged or :class:`NotConverged`."""
    mf = settings.make_scf(mol)
    if field is not None:
        with mol.with_common_origin((0, 0, 0)):
            hcore = mf.get_hcore() + np.einsum("x,xij->ij", field, mol.intor_symmetric("int1e_r", comp=3))
        mf.get_hcore = lambda *args: hcore
    mf.kernel()
    if not mf.converged:
        where = "" if field is None else f" in the finite field {field.tolist()} a.u."
        raise NotConverged(f"RHF reference not converged within max_cycle={settings.max_cycle}{where}")
    return mf


def _ccsd(reference):
    """Converged CCSD on ``reference``."""
    from pyscf import cc

    solver = cc.CCSD(reference)
    solver.conv_tol, solver.conv_tol_normt, solver.verbose = CC_CONV_TOL, CC_CONV_TOL_NORMT, 0
    solver.kernel()
    if not solver.converged:
        raise NotConverged(f"CCSD amplitudes not converged within max_cycle={solver.max_cycle}")
    return solver


def _energy_and_gradient(reference, method: str) -> tuple[float, np.ndarray]:
    """Total energy (Hartree) and analytic nuclear gradient ``(n_atoms, 3)`` (Hartree/Bohr)."""
    from pyscf import mp

    if method == "MP2":
        solver = mp.MP2(reference).run(verbose=0)
        return float(solver.e_tot), solver.nuc_grad_method().set(verbose=0).kernel()
    solver = _ccsd(reference)
    if method == "CCSD":
        gradient = solver.nuc_grad_method().set(verbose=0).kernel()
        if not solver.converged_lambda:
            raise NotConverged("CCSD Lambda equations not converged")
        return float(solver.e_tot), gradient
    from pyscf.cc import ccsd_t_lambda
    from pyscf.grad import ccsd_t as ccsd_t_gradient

    eris = solver.ao2mo()
    triples = solver.ccsd_t(eris=eris)
    converged, l1, l2 = ccsd_t_lambda.kernel(solver, eris, solver.t1, solver.t2, tol=CC_CONV_TOL_NORMT, verbose=0)
    if not converged:
        raise NotConverged("CCSD(T) Lambda equations not converged")
    gradient = ccsd_t_gradient.Gradients(solver).set(verbose=0).kernel(solver.t1, solver.t2, l1, l2, eris=eris)
    return float(solver.e_tot + triples), gradient
