"""The ASE calculator: energies, forces, dipoles, charges, orbitals and densities from a trained model.

    from mlwfcalc import MLWFCalculator
    atoms.calc = MLWFCalculator(model="water-pbe-def2svp")
    atoms.get_potential_energy(); atoms.get_forces(); atoms.calc.get_eigenvalues()

ASE units at this boundary (eV, Angstrom, e*Angstrom, e); atomic units everywhere inside.
Also available as ``ase.calculators.calculator.get_calculator_class("mlwfcalc")``.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import (Calculator, PropertyNotImplementedError, all_changes,
                                        external_calculators, register_calculator_class)
from ase.calculators.singlepoint import SinglePointCalculator
from ase.units import Bohr, Hartree

from .domain import DOMAIN_POLICIES, OutOfDomainError, OutOfDomainWarning
from .electronic import (SpuriousOrbitalWarning, dipole_moment, mulliken_charges, write_density_cube,
                         write_orbital_cube)
from .predictor import HamiltonianPredictor, Prediction, load_model
from .uncertainty import QUANTITIES, FeatureDistance, UncertainPredictionError, check_hard_limit
from .validation import InputError

MODES = ("ml", "harris", "variational", "scf")
UNCERTAIN_POLICIES = ("raise", "warn", "scf")


class MLWFCalculator(Calculator):
    """ASE calculator on an mlwfcalc model.

    Args:
        model: a shipped model name, a model directory, or a loaded :class:`HamiltonianPredictor`.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (for a model given by name or path).
        dtype: ``None`` (the model's, float32), ``torch.float32`` or ``torch.float64`` for the network;
            energies and forces are always assembled in float64.
        mode: how energies and forces are made; None (default): the model's recommended route
            (``model.model.energy_route``, chosen on its validation data and shown by ``mlwfcalc models``):

            * ``"ml"``: the model's energy head (the shipped ones: ``E = sum_i e(Z_i, h_i)`` on the
              network's invariant features, term ``"none"``); forces are its exact gradient
              (conservative, for MD). One network pass plus one backward pass; time and accuracy per
              model in its card and docs/benchmarks.md.
            * ``"harris"``: the Harris-Foulkes functional at the model's density (:mod:`mlwfcalc.functional`);
              ``"variational"``: the Kohn-Sham functional ``E_KS[P]`` there. Both errors are second order in
              the density error. Forces (``forces="exact"``, default) are the exact negative gradient of
              the energy reported, response of the density through the model included: conservative, for
              NVE and optimisations. One Fock build, then one (variational) or two (Harris) fixed-density
              gradients and one backward pass through the network.
            * ``"scf"``: a full PySCF SCF warm-started from the model's density, then the analytic gradient:
              the exact DFT answer at the model's level of theory, in fewer cycles than from scratch
              (about 0.3 s / 4 s).
        forces: for ``"harris"`` and ``"variational"``: ``"exact"`` (default) or ``"frozen-density"``
            (PySCF's nuclear gradient at the predicted orbitals, no response term: not the derivative of
            the energy reported, so neither NVE nor an optimiser's line search can trust it).
        charge, spin: total charge and 2S (PySCF's ``spin``); when None, ``atoms.info["charge"]`` and
            ``atoms.info["spin"]`` are read, else 0. The model refuses states it was not trained for.
        scf_conv_tol: energy convergence of the ``"scf"`` mode, Hartree.
        domain: ``"refuse"`` (default): a structure outside the model's training domain (another
            molecule, a dimer, a fragment, a bond stretched beyond what training saw) raises
            :class:`~mlwfcalc.domain.OutOfDomainError`; ``"warn"``: computed, with one warning per calculator.
        on_uncertain: a structure whose uncertainty passes the model's hard limit (errors many times the
            card's expected): ``"raise"`` (default) :class:`~mlwfcalc.uncertainty.UncertainPredictionError`;
            ``"warn"``: returned, warned once, counted in ``uncertain_calls``; ``"scf"``: computed exactly at the
            model's energy level (PySCF RKS warm-started from the model, or the correlated method of a transfer
            model), as are structures outside the domain; flagged in ``results["scf_fallback"]``, counted in
            ``scf_fallback_calls`` and, with ``fallback_database``, appended to that label database (geometry,
            energy, forces, F, dipole; the format ``mlwfcalc train --init-from`` fine-tunes on).
        fallback_database: path of the label database of ``on_uncertain="scf"`` steps (created if missing).

    A run stopped by a refusal keeps what it did: the error carries ``atoms`` (the structure refused) and
    ``last_good_atoms`` (the last structure computed, with its results), also ``calc.last_good_atoms``::

        try:
            BFGS(atoms).run(fmax=0.05)
        except mlwfcalc.OutOfDomainError as err:
            atoms = err.last_good_atoms

    Properties: ``energy`` and ``free_energy`` (eV), ``forces`` (eV/A), ``dipole`` (e*A about the origin,
    from the predicted or SCF density), ``charges`` (Mulliken, e), and ``uncertainty``: the expected mean
    absolute error of the predicted Kohn-Sham matrix elements, eV (for a transfer model, of the force
    components, eV/A; ``results["uncertainty_unit"]`` says which), from the distance of the structure's
    atomic environments to the training data (None in mode ``"scf"``, whose answer is exact DFT, and for
    models without a fitted uncertainty). When it passes the model's threshold (an expected error twice
    the validation set's) the calculator warns once and counts such calls in
    ``flagged_calls``; ``results["uncertainty_above_threshold"]`` says it for the last call. Likewise a
    prediction whose occupied orbitals include a spurious one (an F error along the basis's near-linear
    dependencies, :mod:`mlwfcalc.electronic`) warns once, is counted in ``spurious_calls`` and listed in
    ``results["spurious_orbitals"]`` (empty when the orbitals look physical). All are computed in one
    pass and cached. ``calls`` counts the passes actually computed.
    """

    implemented_properties = ["energy", "free_energy", "forces", "dipole", "charges", "uncertainty"]
    default_parameters = {"mode": None, "forces": "exact", "charge": None, "spin": None, "scf_conv_tol": 1e-9,
                          "domain": "refuse", "on_uncertain": "raise"}

    def __init__(self, model: str | Path | HamiltonianPredictor = "water-pbe-def2svp", device: str = "auto",
                 dtype: torch.dtype | None = None, mode: str | None = None, charge: int | None = None,
                 spin: int | None = None, scf_conv_tol: float = 1e-9, domain: str = "refuse",
                 forces: str = "exact", on_uncertain: str = "raise", fallback_database: str | Path | None = None,
                 **kwargs):
        from .functional import FORCE_METHODS

        if mode is not None and mode not in MODES:
            raise InputError(f"unknown mode {mode!r}; choose one of {MODES}")
        if forces not in FORCE_METHODS:
            raise InputError(f"forces={forces!r}: choose one of {FORCE_METHODS}")
        if domain not in DOMAIN_POLICIES:
            raise InputError(f"domain={domain!r}: choose one of {DOMAIN_POLICIES}")
        if on_uncertain not in UNCERTAIN_POLICIES:
            raise InputError(f"on_uncertain={on_uncertain!r}: choose one of {UNCERTAIN_POLICIES}")
        if fallback_database is not None and on_uncertain != "scf":
            raise InputError("fallback_database collects the steps of on_uncertain='scf': set it, or drop the database")
        self.model = model if isinstance(model, HamiltonianPredictor) else load_model(model, device, dtype)
        mode = mode or self.model.model.energy_route
        super().__init__(mode=mode, forces=forces, charge=charge, spin=spin, scf_conv_tol=scf_conv_tol,
                         domain=domain, on_uncertain=on_uncertain, **kwargs)
        self.fallback_database = None if fallback_database is None else Path(fallback_database)
        self.uncertain_calls = 0
        self.scf_fallback_calls = 0
        self.last_good_atoms: Atoms | None = None
        if mode == "ml" and self.model.energy_head is None:
            raise InputError(f"model {self.model.path} has no energy head, which mode='ml' needs: use "
                             "mode='harris', 'variational' or 'scf', or fit one with `mlwfcalc train-energy`")
        level = self.model.model.energy_level
        if mode in ("harris", "variational") and level != self.model.theory.name:
            raise InputError(f"model {self.model.name} gives {level} energies, but mode={mode!r} evaluates the "
                             f"{self.model.theory.name} functional at its density: use mode='ml' for {level}")
        self.calls = 0
        self.flagged_calls = 0
        self.spurious_calls = 0
        self._warned: set[str] = set()
        self.prediction: Prediction | None = None

    def state(self, atoms: Atoms) -> tuple[int, int]:
        """``(charge, spin)`` for ``atoms``: the calculator's arguments first, then ``atoms.info``, else 0."""
        charge = self.parameters.charge
        spin = self.parameters.spin
        charge = atoms.info.get("charge", 0) if charge is None else charge
        spin = atoms.info.get("spin", 0) if spin is None else spin
        return int(charge), int(spin)

    def check_state(self, atoms: Atoms, tol: float = 1e-15) -> list[str]:
        """ASE's checks plus charge and spin from ``atoms.info`` (ASE does not watch ``info``)."""
        changes = super().check_state(atoms, tol)
        if self.atoms is not None and self.state(atoms) != self.state(self.atoms) and "info" not in changes:
            changes.append("info")
        return changes

    def calculate(self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        charge, spin = self.state(atoms)
        try:
            prediction, energy, forces, outside = self._compute(atoms, charge, spin)
            fallback = False
        except OutOfDomainError as err:  # outside the domain, or past the uncertainty's hard limit
            if self.parameters.on_uncertain != "scf" or self.parameters.mode == "scf":
                err.atoms = atoms.copy()
                err.last_good_atoms = self.last_good_atoms
                raise
            prediction, energy, forces = self._fallback(atoms, charge, spin, str(err))
            outside, fallback = [], True
        prediction.outside_domain = outside
        self.prediction = prediction
        self.results = ase_results(prediction, energy, forces, self.model.uncertainty)
        self.results["uncertainty_above_threshold"] = self._flag(prediction, atoms)
        self.results["spurious_orbitals"] = self._flag_spurious(prediction, atoms)
        self.results["scf_fallback"] = fallback
        self.calls += 1
        good = atoms.copy()
        good.calc = SinglePointCalculator(good, **{k: self.results[k] for k in ("energy", "free_energy", "forces",
                                                                                 "dipole", "charges")})
        self.last_good_atoms = good

    def _compute(self, atoms: Atoms, charge: int, spin: int):
        """``(prediction, energy Hartree, forces Hartree/Bohr, outside-domain findings)`` by the calculator's mode;
        raises OutOfDomainError (domain) or UncertainPredictionError (hard limit) as its policies say."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", OutOfDomainWarning)
            outside = self.model.check_atoms(atoms, charge, spin, domain=self.parameters.domain)
        if outside:
            self._warn_once("domain", str(caught[-1].message), OutOfDomainWarning)
        mode = self.parameters.mode
        with warnings.catch_warnings():  # counted and warned about once by _flag_spurious
            warnings.simplefilter("ignore", SpuriousOrbitalWarning)
            if mode == "scf":
                prediction, energy, forces = self._scf(atoms, charge, spin)
                return prediction, energy, forces, outside
            (prediction,) = self.model.predict_checked([atoms], [(charge, spin)], forces=mode == "ml",
                                                       energy=mode == "ml")
            self._check_hard_limit(prediction, atoms)
            if mode == "ml":
                return prediction, prediction.energy, prediction.forces, outside
            from .functional import functional_energy

            route = functional_energy(self.model, atoms, mode, self.parameters.forces, charge, spin)
            return prediction, route.energy, route.forces, outside

    def _check_hard_limit(self, prediction: Prediction, atoms: Atoms) -> None:
        """Past the model's hard limit: raise (``on_uncertain`` "raise" or "scf"), or warn once and count ("warn")."""
        try:
            check_hard_limit(prediction.uncertainty, self.model.uncertainty, self.model.name,
                             atoms.get_chemical_formula(), atoms)
        except UncertainPredictionError as err:
            self.uncertain_calls += 1
            if self.parameters.on_uncertain != "warn":
                raise
            self._warn_once("hard limit", f"{err} (later such calls are counted in calc.uncertain_calls)",
                            OutOfDomainWarning)

    def _fallback(self, atoms: Atoms, charge: int, spin: int, reason: str):
        """The step computed exactly at the model's energy level (``on_uncertain="scf"``), appended to the
        fallback label database when one is named; ``(prediction, energy, forces)``."""
        level = self.model.model.energy_level
        self.scf_fallback_calls += 1
        self._warn_once("fallback", f"{atoms.get_chemical_formula()}: computed exactly at {level} instead ({reason}). "
                        "Later fallbacks are counted in calc.scf_fallback_calls, not warned.", UserWarning)
        if level == self.model.theory.name:
            prediction, energy, forces = self._scf(atoms, charge, spin, self.model.theory.conv_tol, labels=True)
            label = dict(energy=energy, forces=forces, fock=prediction.fock,
                         dipole=dipole_moment(prediction.mol, torch.as_tensor(prediction.density_matrix)).numpy())
            settings = self.model.theory
        else:
            from .data.correlated import correlated_labels
            from .theory import LevelOfTheory

            method, basis = level.split("/")
            settings = LevelOfTheory(method=method.upper(), basis=basis)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                (prediction,) = self.model.predict_checked([atoms], [(charge, spin)], energy=False)
            from .basis import BasisLayout

            mol = BasisLayout(basis, atoms.numbers).make_mole(atoms.numbers, atoms.positions / Bohr, charge=charge,
                                                              spin=spin)
            energy, forces, dipole, _ = correlated_labels(mol, settings)
            label = dict(energy=energy, forces=forces, fock=None, dipole=np.asarray(dipole))
        if self.fallback_database is not None:
            from .data.database import LabelDatabase
            from .data.labelling import Frame, LabelResult

            frame = Frame(source="MLWFCalculator on_uncertain='scf'", index=self.scf_fallback_calls - 1,
                          numbers=atoms.numbers.copy(), positions=atoms.positions.copy(), charge=charge, spin=spin,
                          molecule=str(atoms.info.get("smiles", "")))
            LabelDatabase(self.fallback_database, settings).write(
                LabelResult(frame, True, guess=f"model {self.model.name}", **label))
        return prediction, energy, forces

    def _flag(self, prediction: Prediction, atoms: Atoms) -> bool:
        """Whether the prediction's uncertainty passes the model's threshold; warns the first time."""
        threshold = self.model.uncertainty_threshold
        if prediction.uncertainty is None or threshold is None or prediction.uncertainty <= threshold:
            return False
        self.flagged_calls += 1
        describe = self.model.uncertainty.config.describe
        self._warn_once("uncertainty", f"{atoms.get_chemical_formula()}: uncertainty ({describe(prediction.uncertainty)}) "
                        f"passes the threshold of {self.model.name} ({describe(threshold)}): the model is expected to "
                        "be more than twice as wrong here as on its validation set, in energies, forces and orbitals. "
                        "Later crossings are counted in calc.flagged_calls, not warned.", UserWarning)
        return True

    def _flag_spurious(self, prediction: Prediction, atoms: Atoms) -> list[int]:
        """The prediction's spurious occupied orbitals (:attr:`Prediction.spurious_orbitals`); warns the first time."""
        if not prediction.spurious_orbitals:
            return []
        self.spurious_calls += 1
        self._warn_once("spurious", f"{atoms.get_chemical_formula()}: occupied orbital(s) "
                        f"{prediction.spurious_orbitals} predicted by {self.model.name} are spurious (made of the "
                        "basis's near-linear dependencies): orbitals, dipole and charges are unreliable for this "
                        "structure, whatever the uncertainty says; mode='scf' gives exact DFT. Later such calls are "
                        "counted in calc.spurious_calls, not warned.", SpuriousOrbitalWarning)
        return list(prediction.spurious_orbitals)

    def _warn_once(self, kind: str, message: str, category: type[Warning]) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            warnings.warn(message, category, stacklevel=4)

    def calculate_batch(self, images: Sequence[Atoms], batch_size: int = 64) -> np.ndarray:
        """Energies and forces of many structures (conformer screening, dataset scoring) in batched passes.

        Mode ``"ml"`` only: ``batch_size`` molecules share one network pass and one backward pass. Each
        image gets a :class:`~ase.calculators.singlepoint.SinglePointCalculator` holding energy,
        free_energy, forces, dipole and charges (ASE units), and in its ``results`` the uncertainty
        (eV), its flag and the spurious orbitals, so ``image.get_potential_energy()`` works afterwards
        without recomputing. Charge and spin come from the calculator or each image's ``info`` and must be
        the same for all images. ``calls`` grows by the number of network passes.

        Returns:
            ``(n_images,)`` energies in eV, in input order.
        """
        if self.parameters.mode != "ml":
            raise InputError(f"calculate_batch needs mode='ml' (got {self.parameters.mode!r}); the "
                             "PySCF-based modes run one molecule at a time: use atoms.calc = calculator")
        images = list(images)
        states = {self.state(a) for a in images}
        if len(states) > 1:
            raise InputError(f"calculate_batch needs one charge and spin for all images, got {sorted(states)}")
        charge, spin = states.pop() if states else (0, 0)
        with warnings.catch_warnings():  # counted and warned about once by _flag_spurious
            warnings.simplefilter("ignore", SpuriousOrbitalWarning)
            predictions = self.model.predict(images, charge, spin, forces=True, batch_size=batch_size,
                                             domain=self.parameters.domain)
        for image, prediction in zip(images, predictions):
            results = ase_results(prediction, prediction.energy, prediction.forces, self.model.uncertainty)
            extra = {k: results.pop(k) for k in ("uncertainty", "uncertainty_unit")}  # not ASE's properties
            image.calc = SinglePointCalculator(image, **results)
            image.calc.results.update(extra, uncertainty_above_threshold=self._flag(prediction, image),
                                      spurious_orbitals=self._flag_spurious(prediction, image))
        self.calls += math.ceil(len(images) / batch_size)
        return np.array([p.energy * Hartree for p in predictions])

    def _scf(self, atoms: Atoms, charge: int, spin: int, conv_tol: float | None = None,
             labels: bool = False) -> tuple[Prediction, float, np.ndarray]:
        """PySCF SCF warm-started from the model, then its gradient (``labels``: as the model's labels were made)."""
        from .pyscf import guess_dm, reference_scf

        mol = self.model.make_mole(atoms, charge, spin)
        mf = reference_scf(self.model, mol, conv_tol=conv_tol or self.parameters.scf_conv_tol)
        with warnings.catch_warnings():  # checked and warned about by calculate()
            warnings.simplefilter("ignore", OutOfDomainWarning)
            mf.kernel(dm0=guess_dm(mol, self.model, domain="warn"))
        if not mf.converged:
            raise RuntimeError(f"PySCF SCF did not converge in {mf.max_cycle} cycles from the model's guess "
                               f"({atoms.get_chemical_formula()})")
        forces = -(self.model.theory.nuclear_gradient(mf) if labels else mf.nuc_grad_method().kernel())
        overlap = mf.get_ovlp()
        prediction = Prediction(fock=mf.get_fock(), overlap=overlap, mo_energy=mf.mo_energy, mo_coeff=mf.mo_coeff,
                                mo_occ=mf.mo_occ, density_matrix=mf.make_rdm1(), mol=mol, energy=float(mf.e_tot),
                                forces=forces)
        return prediction, float(mf.e_tot), forces

    # --- orbitals and densities (ASE's DFT accessors, eV) -------------------------------------------

    def _current(self) -> Prediction:
        if self.atoms is None:
            raise PropertyNotImplementedError("nothing computed yet: call atoms.get_potential_energy() first")
        self.get_property("energy", self.atoms)
        return self.prediction

    def get_number_of_spins(self) -> int:
        return 1

    def get_spin_polarized(self) -> bool:
        return False

    def get_ibz_k_points(self) -> np.ndarray:
        return np.zeros((1, 3))

    def get_k_point_weights(self) -> np.ndarray:
        return np.ones(1)

    def get_number_of_bands(self) -> int:
        return len(self._current().mo_energy)

    def get_eigenvalues(self, kpt: int = 0, spin: int = 0) -> np.ndarray:
        """Orbital energies (eV), ascending."""
        self._check_kpt_spin(kpt, spin)
        return self._current().mo_energy * Hartree

    def get_occupation_numbers(self, kpt: int = 0, spin: int = 0) -> np.ndarray:
        """2 for occupied orbitals, 0 for virtual ones (closed shell)."""
        self._check_kpt_spin(kpt, spin)
        return np.array(self._current().mo_occ, dtype=float)

    def get_homo_lumo(self) -> tuple[float, float]:
        """HOMO and LUMO energies, eV."""
        p = self._current()
        n = int((p.mo_occ > 0).sum())
        return float(p.mo_energy[n - 1] * Hartree), float(p.mo_energy[n] * Hartree)

    def get_fermi_level(self) -> float:
        """Mid-gap between HOMO and LUMO, eV."""
        return float(np.mean(self.get_homo_lumo()))

    @staticmethod
    def _check_kpt_spin(kpt: int, spin: int) -> None:
        if kpt != 0 or spin != 0:
            raise IndexError(f"a molecule has one k-point and one spin channel here (asked kpt={kpt}, spin={spin})")

    # --- matrices and files (atomic units, PySCF AO order) ------------------------------------------

    def get_mole(self):
        """The PySCF Mole (model basis, Bohr inside) that the matrices refer to."""
        return self._current().mol

    def get_density_matrix(self) -> np.ndarray:
        """``(nao, nao)`` AO density matrix."""
        return self._current().density_matrix

    def get_mo_coefficients(self) -> np.ndarray:
        """``(nao, nmo)`` MO coefficients, columns in the order of :meth:`get_eigenvalues`."""
        return self._current().mo_coeff

    def get_fock_matrix(self) -> np.ndarray:
        """``(nao, nao)`` Kohn-Sham matrix, Hartree (predicted; the SCF one in mode ``"scf"``)."""
        return self._current().fock

    def get_overlap_matrix(self) -> np.ndarray:
        return self._current().overlap

    def write_density_cube(self, path: str | Path, spacing: float = 0.1, margin: float = 5.0) -> None:
        """Electron density as a Gaussian cube file; ``spacing`` and ``margin`` in Bohr."""
        p = self._current()
        write_density_cube(p.mol, p.density_matrix, path, spacing, margin)

    def write_orbital_cube(self, index: int | str, path: str | Path, spacing: float = 0.1,
                           margin: float = 5.0) -> None:
        """Orbital ``index`` (0-based, or ``"homo"`` / ``"lumo"``) as a Gaussian cube file."""
        p = self._current()
        n_occ = int((p.mo_occ > 0).sum())
        named = {"homo": n_occ - 1, "lumo": n_occ}
        if isinstance(index, str):
            if index.lower() not in named:
                raise ValueError(f"orbital {index!r}: give an integer index, 'homo' or 'lumo'")
            index = named[index.lower()]
        write_orbital_cube(p.mol, p.mo_coeff, index, path, spacing, margin)


def ase_results(prediction: Prediction, energy: float, forces: np.ndarray,
                uncertainty: FeatureDistance | None) -> dict[str, np.ndarray | float]:
    """ASE's property dict (eV, eV/A, e*A about the origin, Mulliken e) from atomic-unit results; the
    uncertainty in eV (of F) or eV/A (of the forces, transfer models) as the model's ``uncertainty`` says."""
    density = torch.as_tensor(prediction.density_matrix)
    dipole = dipole_moment(prediction.mol, density).numpy() * Bohr
    charges = mulliken_charges(prediction.mol, density, torch.as_tensor(prediction.overlap)).numpy()
    return {"energy": energy * Hartree, "free_energy": energy * Hartree,
            "forces": np.asarray(forces) * Hartree / Bohr, "dipole": dipole, "charges": charges,
            **_uncertainty_in_ase_units(prediction.uncertainty, uncertainty)}


def _uncertainty_in_ase_units(value: float | None, uncertainty: FeatureDistance | None) -> dict:
    if value is None or uncertainty is None:
        return {"uncertainty": None, "uncertainty_unit": None}
    factor, unit = QUANTITIES[uncertainty.config.quantity]["ase"]
    return {"uncertainty": value * factor, "uncertainty_unit": unit}


if "mlwfcalc" not in external_calculators:
    register_calculator_class("mlwfcalc", MLWFCalculator)
