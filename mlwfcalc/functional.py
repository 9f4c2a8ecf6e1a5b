"""Energies and forces from the Kohn-Sham functional at the model's density (the routes ``"variational"``
and ``"harris"`` of the calculator), with forces that are the exact negative gradient of the energy reported.

The density is the model's: ``P(R) = P(F_theta(R), S(R))``, the closed-shell aufbau density of the predicted
Kohn-Sham matrix, in the overlap subspace the model solves its orbitals in (``model.overlap_subspace``; the
whole basis when 0), differentiable through the network and the exact overlap
(:func:`~mlwfcalc.electronic.subspace_density_matrix`). Two energies of it, both second order in the density error:

* ``"variational"``: ``E_KS[P]``, the Kohn-Sham functional itself (one Fock build);
* ``"harris"``: ``E_H[P] = E_KS[P] + tr[(P_out - P) F[P]]``, ``P_out`` the aufbau density of ``F[P]``
  (the Harris-Foulkes functional; the same Fock build and one diagonalisation).

Their exact derivatives have two parts (``forces="exact"``, the default):

* the **nuclear derivative at fixed AO density matrix** ``g(P)`` (PySCF's derivative integrals of H_core, J
  and XC, basis functions moving with their atoms, grid response included), with no energy-weighted
  density term, since ``P`` is not an SCF solution. For Harris, with ``D = P_out - P`` and ``W_out`` the
  energy-weighted density of ``P_out``: ``g(P) + d/de g(P + e D) - tr(W_out dS/dR)``; the derivative in
  ``e`` is a central difference of step :data:`DENSITY_STEP` (error of order step^2 |D|^3, far below the
  finite-difference tests' 1e-5 Hartree/Bohr);
* the **response of P through the model**: ``tr(dE/dP dP/dR)`` by one backward pass through the network,
  with ``dE/dP = F_KS[P]`` (variational) or ``f_Hxc[P](P_out - P)`` (Harris, the Hartree-XC kernel from
  PySCF's response function).

``forces="frozen-density"`` gives PySCF's nuclear gradient at the predicted orbitals instead (no response
term; what QHFlow2's calculator serves): not the derivative of either energy.

The Fock build and its derivatives run at :class:`FunctionalSettings`: the grid level and whether the Coulomb
term is density-fitted (RI-J), by default the model's recorded choice (``config.json`` ``functional_settings``,
chosen by ``benchmarks/functional_cost.py`` on its validation molecules), else its labels' grid and exact J.
The forces are the exact derivative of the energy at whichever settings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from ase import Atoms
from ase.units import Bohr

from .derivatives import fixed_density_gradient, overlap_term
from .electronic import overlap_matrix, solve_orbitals, subspace_density_matrix
from .validation import InputError

ROUTES = ("variational", "harris")
FORCE_METHODS = ("exact", "frozen-density")
#: Step in units of ``D = P_out - P`` of the central difference that gives Harris's ``d/de g(P + e D)``.
DENSITY_STEP = 1e-2


@dataclass(frozen=True)
class FunctionalSettings:
    """How a functional route builds its Fock matrix and derivatives.

    Attributes:
        grid_level: PySCF's DFT grid level (0-9); None: the model's labels' (``model.theory.grid_level``).
        ri_j: density-fit the Coulomb term (PySCF's default auxiliary basis for the orbital basis; the auxiliary
            basis's derivative is in the forces).
    """

    grid_level: int | None = None
    ri_j: bool = False

    def __post_init__(self):
        if self.grid_level is not None and not (isinstance(self.grid_level, int) and 0 <= self.grid_level <= 9):
            raise InputError(f"functional grid_level {self.grid_level!r}: give PySCF's grid level, 0-9")

    @classmethod
    def of(cls, model) -> "FunctionalSettings":
        """A model's recorded settings (``record["functional_settings"]``), else its labels' grid and exact J."""
        recorded = model.model.record.get("functional_settings", {})
        return cls(grid_level=recorded.get("grid_level"), ri_j=bool(recorded.get("ri_j", False)))

    @property
    def name(self) -> str:
        """``"grid 3, exact J"`` or ``"grid 1, RI-J"`` (``grid labels'`` where the level is the model's)."""
        grid = "labels' grid" if self.grid_level is None else f"grid {self.grid_level}"
        return f"{grid}, {'RI-J' if self.ri_j else 'exact J'}"

    def make_scf(self, model, mol):
        """A closed-shell PySCF RKS object of ``mol`` at the model's functional and these settings."""
        from .pyscf import reference_scf

        mf = reference_scf(model, mol)
        if self.grid_level is not None:
            mf.grids.level = self.grid_level
        return mf.density_fit() if self.ri_j else mf


@dataclass
class FunctionalResult:
    """One molecule through a functional route (atomic units).

    Attributes:
        energy: Hartree.
        forces: ``(n_atoms, 3)`` Hartree/Bohr, or None when not asked for.
        density_matrix: ``(nao, nao)`` the model's density ``P`` the energy was evaluated at.
        fock: ``(nao, nao)`` ``F_KS[P]``, Hartree.
        mo_energy, mo_coeff, mo_occ: the model's orbitals (in its overlap subspace), whose density is ``P``.
        seconds: wall time of each step (``"network"``, ``"fock"``, ``"nuclear"``, ``"response"``).
    """

    energy: float
    forces: np.ndarray | None
    density_matrix: np.ndarray
    fock: np.ndarray
    mo_energy: np.ndarray
    mo_coeff: np.ndarray
    mo_occ: np.ndarray
    seconds: dict = field(default_factory=dict)


def model_density(model, atoms: Atoms, positions: torch.Tensor, mol) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's F and its density ``P(F_theta(R), S(R))`` for ``atoms`` at ``positions`` ``(n_atoms, 3)``
    Bohr (float64; differentiable in the positions and the weights where autograd is on): two ``(nao, nao)``
    float64 tensors on the host. InputError where the predicted F has no HOMO-LUMO gap."""
    out = model.model(model.graph_batch([atoms], [positions], [mol]), [mol], [positions])
    fock_model = out.fock[0, :mol.nao, :mol.nao].to("cpu", torch.float64)
    try:
        density = subspace_density_matrix(fock_model, overlap_matrix(mol, positions), mol.nelectron,
                                          model.overlap_subspace)
    except ValueError as err:  # no HOMO-LUMO gap in the predicted F
        raise InputError(f"{atoms.get_chemical_formula()}: {err}; the model's density is not defined here, "
                         "use mode='scf'") from None
    return fock_model, density


def functional_energy(model, atoms: Atoms, route: str = "harris", forces: str | None = "exact",
                      charge: int = 0, spin: int = 0, grid_response: bool = True,
                      settings: FunctionalSettings | None = None) -> FunctionalResult:
    """Energy (and forces) of ``atoms`` by ``route`` (:data:`ROUTES`) at ``model``'s density.

    Args:
        model: a :class:`~mlwfcalc.predictor.HamiltonianPredictor` (domain and state checks are the caller's).
        atoms: the molecule, Angstrom.
        route: ``"harris"`` or ``"variational"`` (module docstring).
        forces: ``"exact"`` (``-dE/dR`` of the energy returned), ``"frozen-density"`` (PySCF's gradient
            at the predicted orbitals, no response), or None (energy only).
        charge, spin: the state (closed shell only: the model's density is a closed-shell aufbau density).
        grid_response: include the motion of the DFT grid in the forces (exact derivative of the energy
            on the grid that moves with the atoms; about 1e-5 Hartree/Bohr without).
        settings: grid level and RI-J of the Fock build (:class:`FunctionalSettings`); None: the model's.

    Raises InputError for an unknown route or force method, an open shell, or a Fock build or gradient
    that PySCF cannot do for this molecule (the error names it).
    """
    if route not in ROUTES:
        raise InputError(f"unknown energy route {route!r}; choose one of {', '.join(ROUTES)}")
    if forces not in (*FORCE_METHODS, None):
        raise InputError(f"unknown force method {forces!r}; choose one of {', '.join(FORCE_METHODS)}")
    if spin:
        raise InputError(f"{atoms.get_chemical_formula()}: the functional routes take closed shells (spin 0), "
                         f"not 2S = {spin}; use mode='scf'")
    settings = settings or FunctionalSettings.of(model)
    seconds = {}
    start = time.perf_counter()
    mol = model.make_mole(atoms, charge, spin)
    exact = forces == "exact"
    with torch.set_grad_enabled(exact):
        positions = torch.as_tensor(atoms.positions / Bohr, dtype=torch.float64).requires_grad_(exact)
        fock_model, density = model_density(model, atoms, positions, mol)
    dm = density.detach().numpy()
    s = mol.intor("int1e_ovlp")
    orbitals = solve_orbitals(fock_model.detach(), torch.as_tensor(s), mol.nelectron, subspace=model.overlap_subspace)
    mo_energy, mo_coeff, mo_occ = (t.numpy() for t in (orbitals.energies, orbitals.coefficients, orbitals.occupations))
    seconds["network"] = time.perf_counter() - start
    where = f"{atoms.get_chemical_formula()} ({model.theory.name})"
    try:
        start = time.perf_counter()
        mf = settings.make_scf(model, mol)
        at_density = route_energy(mf, dm, s, route)
        energy, fock = at_density.energy, at_density.fock
        seconds["fock"] = time.perf_counter() - start
        gradient = None
        if forces == "frozen-density":
            start = time.perf_counter()
            grad = mf.nuc_grad_method()
            grad.grid_response = grid_response
            gradient = grad.kernel(mo_energy=mo_energy, mo_coeff=mo_coeff, mo_occ=mo_occ)
            seconds["nuclear"] = time.perf_counter() - start
        elif exact:
            start = time.perf_counter()
            if route == "variational":
                nuclear = fixed_density_gradient(mf, dm, grid_response)
            else:
                difference = at_density.dm_out - dm
                plus = fixed_density_gradient(mf, dm + DENSITY_STEP * difference, grid_response)
                minus = fixed_density_gradient(mf, dm - DENSITY_STEP * difference, grid_response)
                nuclear = ((plus + minus) / 2 + (plus - minus) / (2 * DENSITY_STEP)
                           - overlap_term(mol, at_density.weighted_out))
            d_energy_d_density = energy_derivative(mf, dm, at_density, route, mo_coeff, mo_occ)
            seconds["nuclear"] = time.perf_counter() - start
            start = time.perf_counter()
            (through_model,) = torch.autograd.grad(density, positions,
                                                   grad_outputs=torch.as_tensor(d_energy_d_density))
            gradient = nuclear + through_model.numpy()
            seconds["response"] = time.perf_counter() - start
    except InputError:
        raise
    except Exception as err:  # PySCF's integrals, grids or XC library
        raise InputError(f"{where}: the Fock build or gradient at the model's density failed "
                         f"({type(err).__name__}: {err})") from None
    return FunctionalResult(energy=energy, forces=None if gradient is None else -np.asarray(gradient),
                            density_matrix=dm, fock=fock, mo_energy=mo_energy, mo_coeff=mo_coeff, mo_occ=mo_occ,
                            seconds=seconds)


@dataclass
class RouteEnergy:
    """A route's energy at one AO density matrix ``P`` (atomic units).

    Attributes:
        energy: Hartree; fock: ``F_KS[P]`` ``(nao, nao)``.
        dm_out: ``P_out``, the aufbau density of ``F_KS[P]`` in the whole basis (Harris only, else None).
        weighted_out: ``W_out``, its energy-weighted density (Harris only, else None).
    """

    energy: float
    fock: np.ndarray
    dm_out: np.ndarray | None = None
    weighted_out: np.ndarray | None = None


def route_energy(mf, dm: np.ndarray, overlap: np.ndarray, route: str) -> RouteEnergy:
    """``E_KS[P]`` (``"variational"``) or ``E_H[P]`` (``"harris"``) of the closed-shell ``mf`` at ``dm``
    ``(nao, nao)``: one Fock build (and for Harris one diagonalisation in ``overlap``)."""
    mol = mf.mol
    hcore = mf.get_hcore()
    veff = mf.get_veff(mol, dm)
    fock = hcore + veff
    energy = float(mf.energy_tot(dm=dm, h1e=hcore, vhf=veff))
    if route == "variational":
        return RouteEnergy(energy, fock)
    out_energy, out_coeff = _eig(fock, overlap)
    occupied = out_coeff[:, : mol.nelectron // 2]
    dm_out = 2 * occupied @ occupied.T
    weighted = 2 * (occupied * out_energy[: mol.nelectron // 2]) @ occupied.T
    return RouteEnergy(energy + float(np.einsum("ij,ji->", dm_out - dm, fock)), fock, dm_out, weighted)


def energy_derivative(mf, dm: np.ndarray, at_density: RouteEnergy, route: str, mo_coeff: np.ndarray,
                      mo_occ: np.ndarray) -> np.ndarray:
    """``dE/dP`` ``(nao, nao)`` of the route at ``dm`` (for a symmetric change of ``P``): ``F_KS[P]``
    (variational) or the Hartree-XC kernel on ``P_out - P`` (Harris), with ``mo_coeff, mo_occ`` orbitals
    whose density is ``dm`` (the XC kernel is built on their density)."""
    if route == "variational":
        return at_density.fock
    response = mf.gen_response(mo_coeff=mo_coeff, mo_occ=mo_occ, hermi=1)
    return np.asarray(response(at_density.dm_out - dm))


def _eig(fock: np.ndarray, overlap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``F C = S C e`` in the full basis (PySCF's solver): ``(e, C)``."""
    from pyscf import scf

    return scf.hf.eig(fock, overlap)
