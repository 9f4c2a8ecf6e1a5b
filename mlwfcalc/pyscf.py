"""PySCF front end: the model's density as an SCF starting point (same converged answer, fewer cycles).

    from mlwfcalc.pyscf import guess_dm, warm_start
    mf = dft.RKS(mol, xc="pbe")
    warm_start(mf)         # model="auto": the shipped model covering mol; instance-level get_init_guess
    mf.kernel()            # or: mf.kernel(dm0=guess_dm(mf))

A state (charge, spin) or, with ``model="auto"``, a molecule that no shipped model covers gets PySCF's own
minao guess instead, said once per process: the SCF still converges to the exact answer, only without
the warm start.

The model predicts F in its own basis at the Mole's geometry (read in Bohr, so the Mole's unit does
not matter). When the Mole's basis differs (another basis set, or Cartesian d functions), the
occupied orbitals are projected onto it (``pyscf.scf.addons.project_mo_nr2nr``) and
re-orthonormalised in the new overlap, so the guess keeps exactly N electrons; projecting the
density matrix itself (``project_dm_nr2nr``) loses a little of the electron count.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import scipy.linalg
from ase import Atoms
from ase.units import Bohr
from pyscf import gto, lib
from pyscf.lo.orth import vec_lowdin
from pyscf.scf import addons

from .basis import BasisLayout
from .choice import choose_model, is_auto
from .domain import OutOfDomainError
from .notices import notice
from .predictor import HamiltonianPredictor, load_model
from .theory import LevelOfTheory
from .validation import InputError

ModelLike = "str | Path | HamiltonianPredictor"


@functools.lru_cache(maxsize=4)
def _cached_model(name: str, device: str) -> HamiltonianPredictor:
    return load_model(name, device=device)


def resolve_model(model: ModelLike, device: str = "auto") -> HamiltonianPredictor:
    """A loaded model: as given, or loaded (once per process) from a name or path."""
    if isinstance(model, HamiltonianPredictor):
        return model
    return _cached_model(str(model), str(device))


def scf_settings(model: HamiltonianPredictor | None, conv_tol: float = 1e-9) -> LevelOfTheory:
    """The level of theory of an SCF about ``model``: the model's (functional, basis, grid level), or
    PBE/def2-SVP (grid level 3) without one; ``make_scf`` gives RKS for a closed shell, UKS for an open one."""
    return replace(model.theory if model is not None else LevelOfTheory(), conv_tol=conv_tol)


def scf_mole(atoms: Atoms, settings: LevelOfTheory, charge: int = 0, spin: int = 0) -> gto.Mole:
    """The PySCF Mole of ``atoms`` (Angstrom) in ``settings``' basis (spherical AOs, Bohr inside)."""
    return BasisLayout(settings.basis, atoms.numbers).make_mole(atoms.numbers, atoms.positions / Bohr, charge=charge,
                                                                spin=spin)


def say_minao_guess(formula: str, charge: int, spin: int, model: HamiltonianPredictor | None,
                    settings: LevelOfTheory | None = None) -> None:
    """The one line (once per molecule and state in a process) that says PySCF's own guess is used."""
    what = (f"{model.name} covers neutral closed shells only" if model is not None else
            "no shipped model covers it")
    method = "" if settings is None else f" {'UKS' if spin else 'RKS'} {settings.name}"
    notice(f"minao {formula} {charge} {spin}", f"{formula} (charge {charge}, 2S = {spin}): {what}; PySCF{method} "
           "starts from its own minao guess (the exact answer, without the warm start)")


def model_for(mol: gto.Mole, model: ModelLike = "auto", device: str = "auto") -> HamiltonianPredictor | None:
    """The model that gives ``mol``'s guess, or None (said once) where PySCF's own guess must do: no shipped model
    covers the molecule (``model="auto"``), or the model does not cover its charge and spin."""
    numbers = [gto.charge(mol.atom_symbol(i)) for i in range(mol.natm)]
    formula = Atoms(numbers=numbers).get_chemical_formula()
    if is_auto(model):
        try:
            model = choose_model(numbers)
        except OutOfDomainError:
            say_minao_guess(formula, mol.charge, mol.spin, None)
            return None
    model = resolve_model(model, device)
    if not model.covers_state(numbers, mol.charge, mol.spin):
        say_minao_guess(formula, mol.charge, mol.spin, model)
        return None
    return model


def _minao(mol: gto.Mole, mf):
    """PySCF's own minao guess in the form ``mf`` takes (a Mole: restricted, ``(nao, nao)``)."""
    if mf is None:
        from pyscf import scf

        return scf.RHF(mol).get_init_guess(mol, "minao")
    return type(mf).get_init_guess(mf, mol, "minao")  # the class's, not an instance's warm start


def _split(mol_or_mf) -> tuple[gto.Mole, object | None]:
    if isinstance(mol_or_mf, gto.Mole):
        return mol_or_mf, None
    mol = getattr(mol_or_mf, "mol", None)
    if not isinstance(mol, gto.Mole):
        raise InputError(f"guess_dm needs a PySCF Mole or SCF object, got {type(mol_or_mf).__name__}")
    return mol, mol_or_mf


def _is_unrestricted(mf) -> bool:
    """True for UHF/UKS objects (CPU PySCF or gpu4pyscf, which mirror the class names)."""
    return mf is not None and any(cls.__name__ == "UHF" for cls in type(mf).__mro__)


def _is_gpu(mf) -> bool:
    return mf is not None and type(mf).__module__.startswith("gpu4pyscf")


def _check_functional(mf, model: HamiltonianPredictor) -> None:
    if mf is None:
        return
    xc = getattr(mf, "xc", "hf")
    if str(xc).replace(" ", "").lower() != model.functional.replace(" ", "").lower():
        warnings.warn(f"the SCF uses {xc!r} but the model was trained on {model.functional!r}: the guess is "
                      "still a good start, but expect more cycles than with the model's own functional",
                      UserWarning, stacklevel=3)


def model_orbitals(mol: gto.Mole, model: HamiltonianPredictor, domain: str = "refuse") -> tuple[np.ndarray, int]:
    """Occupied orbitals ``(nao, n_occ)`` of the model's prediction, in ``mol``'s basis, and ``n_occ``.

    Raises InputError for elements, charges or spins the model was not trained for, and
    OutOfDomainError for a molecule outside its training domain (``domain="warn"``: a warning).
    """
    numbers = [gto.charge(mol.atom_symbol(i)) for i in range(mol.natm)]
    atoms = Atoms(numbers=numbers, positions=mol.atom_coords(unit="Bohr") * Bohr)
    prediction = model.predict(atoms, charge=mol.charge, spin=mol.spin, energy=False, domain=domain)
    n_occ = int((prediction.mo_occ > 0).sum())
    occupied = prediction.mo_coeff[:, :n_occ]
    model_mol = prediction.mol
    if _same_basis(model_mol, mol):
        return occupied, n_occ
    projected = addons.project_mo_nr2nr(model_mol, occupied, mol)
    return vec_lowdin(projected, mol.intor_symmetric("int1e_ovlp")), n_occ


def _same_basis(a: gto.Mole, b: gto.Mole) -> bool:
    return a.cart == b.cart and a.nao == b.nao and np.array_equal(a._bas[:, :4], b._bas[:, :4]) and \
        np.allclose(a._env[a._bas[:, gto.PTR_EXP]], b._env[b._bas[:, gto.PTR_EXP]])


def guess_dm(mol_or_mf, model: ModelLike = "auto", device: str = "auto", domain: str = "refuse"):
    """The model's density matrix for a PySCF Mole or SCF object, tagged with ``mo_coeff``/``mo_occ``.

    Args:
        mol_or_mf: a ``gto.Mole``, or an RHF/RKS/UHF/UKS object (PySCF or gpu4pyscf).
        model: ``"auto"`` (default): the shipped model covering the molecule (:mod:`mlwfcalc.choice`); or a
            loaded model, a model directory, or a shipped model name.
        device: where a model given by name runs.
        domain: ``"refuse"`` (default) raises :class:`~mlwfcalc.domain.OutOfDomainError` for a molecule
            outside the model's training domain (its guess could lead the SCF to another state);
            ``"warn"`` warns and goes on.

    Returns:
        ``(nao, nao)`` for restricted objects and Moles, ``(2, nao, nao)`` (alpha, beta) for
        unrestricted ones, in the Mole's AO basis; a cupy array for gpu4pyscf objects. For a charge or spin
        the model does not cover, or (``"auto"``) a molecule no shipped model covers: PySCF's own minao
        guess, with one warning.
    """
    mol, mf = _split(mol_or_mf)
    model = model_for(mol, model, device)
    if model is None:
        return _minao(mol, mf)
    _check_functional(mf, model)
    occupied, _ = model_orbitals(mol, model, domain)
    return _density_of(occupied, mf)


def _density_of(occupied: np.ndarray, mf) -> np.ndarray:
    """The closed-shell density of orthonormal occupied orbitals ``(nao, n_occ)``, tagged, in the form ``mf``
    takes (see :func:`guess_dm`; ``mf`` None: restricted numpy)."""
    n_occ = occupied.shape[1]
    if _is_unrestricted(mf):
        half = occupied @ occupied.T
        dm = lib.tag_array(np.stack([half, half]), mo_coeff=np.stack([occupied, occupied]),
                           mo_occ=np.ones((2, n_occ)))
    else:
        dm = lib.tag_array(2 * occupied @ occupied.T, mo_coeff=occupied, mo_occ=np.full(n_occ, 2.0))
    if _is_gpu(mf):
        import cupy

        from gpu4pyscf.lib.cupy_helper import tag_array

        dm = tag_array(cupy.asarray(dm), mo_coeff=cupy.asarray(dm.mo_coeff), mo_occ=cupy.asarray(dm.mo_occ))
    return dm


def warm_start(mf, model: ModelLike = "auto", device: str = "auto", domain: str = "refuse"):
    """Make ``mf.kernel()`` start from the model's density; returns ``mf``. ``model`` and ``domain`` as in
    :func:`guess_dm` (a state or molecule no model covers: ``mf`` is left with PySCF's own guess, said once).

    Replaces ``get_init_guess`` on this instance only (an ``init_guess`` string would be silently
    mapped to minao by PySCF). A geometry change of ``mf.mol`` is seen: the guess is recomputed.
    """
    model = model_for(mf.mol, model, device)
    if model is None:
        return mf
    guess_dm(mf, model, domain=domain)  # fail now, not inside kernel(), on what the model does not know

    def get_init_guess(mol=None, key="minao", **kwargs):
        if mol is not None and mol is not mf.mol:
            return guess_dm(type(mf)(mol), model, domain=domain)
        return guess_dm(mf, model, domain=domain)

    mf.get_init_guess = get_init_guess
    mf._keys = mf._keys.union({"get_init_guess"})  # declared, so PySCF's sanity check does not warn about it
    return mf


class TrajectoryGuess:
    """SCF starting densities along a trajectory (MD, geometry optimisation, scan): the previous step's
    converged density plus the model's change of density between the two geometries,
    ``P_guess(t) = P_scf(t-1) + P_model(t) - P_model(t-1)``, made idempotent with exactly N electrons
    (its ``n_occ`` largest natural orbitals in the overlap metric of ``t``).

    The model's own error largely cancels in the difference, and the previous density's lag behind the
    nuclei is corrected: along NVE steps of malondialdehyde this starts closer than either alone
    (docs/benchmarks.md, ``benchmarks/scf_warm_start.py``). The first step, and any step after a change
    of molecule, basis or an unconverged SCF, starts from the model's density (:func:`guess_dm`).
    A state or molecule no model covers (see :func:`guess_dm`) starts every step from PySCF's minao guess.
    ::

        guesser = TrajectoryGuess()            # model="auto": chosen for the first molecule guessed
        for mol in trajectory:                 # gto.Mole objects, one per step
            mf = dft.RKS(mol, xc="pbe")
            energy = guesser.run(mf)           # mf.kernel(dm0=guesser.guess(mf)), then guesser.update(mf)

    Args:
        model, device, domain: as in :func:`guess_dm`; ``"auto"`` is resolved per molecule.

    Attributes:
        model: the model of the latest guess (None before the first, or where PySCF's guess was used).
        used_history: whether the latest :meth:`guess` used the previous step (False: the model alone).
    """

    def __init__(self, model: ModelLike = "auto", device: str = "auto", domain: str = "refuse"):
        self._spec = model if is_auto(model) else resolve_model(model, device)
        self.model = None if is_auto(model) else self._spec
        self.device = device
        self.domain = domain
        self._last_model = None  # (copy of the Mole, the model's occupied orbitals there) of the latest guess
        self._previous = None  # (copy of the Mole, converged density, model density), closed-shell totals
        self.used_history = False  # whether the latest guess started from the previous step

    def _model_orbitals(self, mol: gto.Mole) -> np.ndarray:
        """The model's occupied orbitals ``(nao, n_occ)`` at ``mol`` (kept for the latest geometry)."""
        if self._last_model is None or not _same_geometry(self._last_model[0], mol):
            self._last_model = (mol.copy(), model_orbitals(mol, self.model, self.domain)[0])
        return self._last_model[1]

    def guess(self, mol_or_mf) -> np.ndarray:
        """The starting density for ``mol_or_mf`` (a Mole or an SCF object), in the form :func:`guess_dm`
        returns."""
        mol, mf = _split(mol_or_mf)
        model = model_for(mol, self._spec, self.device)
        if model is not self.model:  # another model (auto, a new molecule), or none: the model's history is void
            self.model, self._last_model, self._previous = model, None, None
        if model is None:
            self.used_history = False
            return _minao(mol, mf)
        _check_functional(mf, self.model)
        occupied = self._model_orbitals(mol)
        previous = self._previous
        self.used_history = previous is not None and _same_molecule(previous[0], mol)
        if not self.used_history:
            return _density_of(occupied, mf)
        density = previous[1] + 2 * occupied @ occupied.T - previous[2]
        overlap = mol.intor_symmetric("int1e_ovlp")
        metric = overlap @ density @ overlap / 2  # S P S / 2: natural occupations in [0, 1] for an exact P
        _, vectors = scipy.linalg.eigh(metric, overlap)  # S-orthonormal natural orbitals, ascending
        return _density_of(vectors[:, mol.nao - occupied.shape[1]:], mf)

    def update(self, mf) -> None:
        """Remember ``mf``'s converged density for the next step (an unconverged SCF: forget, and warn)."""
        if not mf.converged:
            warnings.warn("TrajectoryGuess.update: the SCF did not converge; the next step starts from the "
                          "model's density alone", UserWarning, stacklevel=2)
            self.reset()
            return
        if self.model is None:  # PySCF's own guess: nothing to remember
            return
        density = mf.make_rdm1()
        density = np.asarray(density.get() if hasattr(density, "get") else density)  # cupy -> numpy
        if density.ndim == 3:  # unrestricted: alpha + beta
            density = density[0] + density[1]
        occupied = self._model_orbitals(mf.mol)
        self._previous = (mf.mol.copy(), density, 2 * occupied @ occupied.T)

    def reset(self) -> None:
        """Forget the previous step: the next guess is the model's density alone."""
        self._previous = None

    def run(self, mf) -> float:
        """``mf.kernel`` from :meth:`guess`, then :meth:`update`; returns the energy (Hartree)."""
        energy = mf.kernel(dm0=self.guess(mf))
        self.update(mf)
        return float(energy)


def _same_molecule(a: gto.Mole, b: gto.Mole) -> bool:
    """Same basis, elements, charge and spin (the geometry may differ)."""
    return _same_basis(a, b) and a.charge == b.charge and a.spin == b.spin and \
        np.array_equal(a.atom_charges(), b.atom_charges())


def _same_geometry(a: gto.Mole, b: gto.Mole) -> bool:
    """:func:`_same_molecule` at the same coordinates (compared by value: PySCF's ``set_geom_`` moves a Mole
    in place)."""
    return _same_molecule(a, b) and np.array_equal(a.atom_coords(), b.atom_coords())


def reference_scf(model: HamiltonianPredictor | None, mol: gto.Mole, conv_tol: float = 1e-9):
    """An SCF object at the model's level of theory (functional, grid level of its training labels; without a
    model PBE/def2-SVP): RKS for a closed-shell ``mol``, UKS for an open-shell one."""
    return scf_settings(model, conv_tol).make_scf(mol)


def variational_energy(model: HamiltonianPredictor, prediction, mf=None) -> float:
    """Kohn-Sham energy functional (Hartree) at the predicted density: one Fock build, no SCF.

    ``E_KS[P]`` is stationary at the SCF density, so its error is second order in the density error.
    ``mf``: a :func:`reference_scf` object of ``prediction.mol`` to reuse (its grids), else one is made.
    """
    mf = mf or reference_scf(model, prediction.mol)
    dm = lib.tag_array(prediction.density_matrix, mo_coeff=prediction.mo_coeff, mo_occ=prediction.mo_occ)
    return float(mf.energy_tot(dm=dm))


def harris_energy(model: HamiltonianPredictor, prediction) -> float:
    """Harris-Foulkes energy (Hartree) from the predicted density: one Fock build and one diagonalisation.

    ``E_H = E_KS[P] + tr[(P_out - P) F[P]]`` with ``P_out`` the aufbau density of ``F[P]``. Like
    :func:`variational_energy` its error is second order in the density error, but of the other
    sign (``E_H <= E_KS[P]``) and, for water with the shipped model, smaller (docs/benchmarks.md).
    It is stationary, not variational: no bound on the exact energy.
    """
    mf = reference_scf(model, prediction.mol)
    dm = prediction.density_matrix
    hcore = mf.get_hcore()
    veff = mf.get_veff(prediction.mol, dm)
    fock = hcore + veff
    energies, coefficients = mf.eig(fock, prediction.overlap)
    dm_out = mf.make_rdm1(coefficients, mf.get_occ(energies, coefficients))
    return float(mf.energy_tot(dm=dm, h1e=hcore, vhf=veff) + np.einsum("ij,ji->", dm_out - dm, fock))
