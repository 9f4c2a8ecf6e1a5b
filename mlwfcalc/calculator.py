"""The ASE calculator: energies, forces, dipoles, charges, orbitals and densities from a trained model.

    from mlwfcalc import MLWFCalculator
    atoms.calc = MLWFCalculator()       # model="auto": the shipped model covering atoms (calc.model.name)
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
from ase.calculators.calculator import Calculator, all_changes, external_calculators, register_calculator_class
from ase.calculators.singlepoint import SinglePointCalculator
from ase.units import Bohr, Hartree

from .accessors import OrbitalAccessors
from .domain import DOMAIN_POLICIES, OutOfDomainError, OutOfDomainWarning
from .electronic import SpuriousOrbitalWarning, dipole_moment, mulliken_charges
from .choice import AUTO, choose_model, is_auto
from .predictor import HamiltonianPredictor, Prediction, load_model
from .pyscf import guess_dm, say_minao_guess, scf_mole, scf_settings
from .uncertainty import QUANTITIES, FeatureDistance, UncertainPredictionError, check_hard_limit
from .validation import InputError, check_not_periodic, check_positions, check_state

MODES = ("ml", "harris", "variational", "scf")
UNCERTAIN_POLICIES = ("raise", "warn", "scf")


class MLWFCalculator(OrbitalAccessors, Calculator):
    """ASE calculator on an mlwfcalc model.

    Args:
        model: ``"auto"`` (default): the shipped model whose training domain covers the molecule of the first
            calculation (:mod:`mlwfcalc.choice`: the per-molecule model before the chemical-space one), then
            fixed, said once, and named by ``calc.model.name``; none covers it: an error naming the nearest
            (mode ``"scf"``: PySCF's own guess instead). Or a shipped model name, a model directory, or a loaded
            :class:`HamiltonianPredictor`.
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
              the exact DFT answer at the model's level of theory (PBE/def2-SVP without a model), in fewer
              cycles than from scratch (about 0.3 s / 4 s).
        forces: for ``"harris"`` and ``"variational"``: ``"exact"`` (default) or ``"frozen-density"``
            (PySCF's nuclear gradient at the predicted orbitals, no response term: not the derivative of
            the energy reported, so neither NVE nor an optimiser's line search can trust it).
        functional_settings: for ``"harris"`` and ``"variational"``: the Fock build's ``{"grid_level": 0-9,
            "ri_j": bool}`` (:class:`~mlwfcalc.functional.FunctionalSettings`); None: the model's recorded choice
            (``config.json`` ``functional_settings``, its error against the labels' grid with exact J and its cost
            in the card), else the labels' grid with exact J.
        charge, spin: total charge and 2S (PySCF's ``spin``); when None, ``atoms.info["charge"]`` and
            ``atoms.info["spin"]`` are read, else 0. The model-based modes refuse states it was not trained for
            (the shipped models: neutral closed shells); mode ``"scf"`` computes any state exactly, RKS for a
            closed shell and UKS for 2S > 0, from PySCF's minao guess where no model covers it (said once).
        scf_conv_tol: energy convergence of the ``"scf"`` mode, Hartree.
        domain: ``"refuse"`` (default): a structure outside the model's training domain (another
            molecule, a dimer, a fragment, a bond stretched beyond what training saw) raises
            :class:`~mlwfcalc.domain.OutOfDomainError`; ``"warn"``: computed, with one warning per calculator.
        on_uncertain: a structure whose uncertainty passes the model's hard limit (errors many times the
            card's expected): ``"raise"`` (the default with ``domain="refuse"``)
            :class:`~mlwfcalc.uncertainty.UncertainPredictionError`; ``"warn"`` (the default with ``domain="warn"``):
            returned, warned once, counted in ``uncertain_calls``; ``"scf"``: computed exactly at the
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
                          "domain": "refuse", "on_uncertain": None, "functional_settings": None}

    def __init__(self, model: str | Path | HamiltonianPredictor = AUTO, device: str = "auto",
                 dtype: torch.dtype | None = None, mode: str | None = None, charge: int | None = None,
                 spin: int | None = None, scf_conv_tol: float = 1e-9, domain: str = "refuse",
                 forces: str = "exact", on_uncertain: str | None = None, fallback_database: str | Path | None = None,
                 functional_settings: dict | None = None, **kwargs):
        from .functional import FORCE_METHODS, FunctionalSettings

        if mode is not None and mode not in MODES:
            raise InputError(f"unknown mode {mode!r}; choose one of {MODES}")
        if forces not in FORCE_METHODS:
            raise InputError(f"forces={forces!r}: choose one of {FORCE_METHODS}")
        if domain not in DOMAIN_POLICIES:
            raise InputError(f"domain={domain!r}: choose one of {DOMAIN_POLICIES}")
        on_uncertain = on_uncertain or ("raise" if domain == "refuse" else "warn")
        if on_uncertain not in UNCERTAIN_POLICIES:
            raise InputError(f"on_uncertain={on_uncertain!r}: choose one of {UNCERTAIN_POLICIES}")
        if fallback_database is not None and on_uncertain != "scf":
            raise InputError("fallback_database collects the steps of on_uncertain='scf': set it, or drop the database")
        if functional_settings is not None:
            try:
                FunctionalSettings(**functional_settings)
            except TypeError:
                raise InputError(f"functional_settings={functional_settings!r}: give a dict with keys grid_level "
                                 "and ri_j") from None
        super().__init__(mode=mode, forces=forces, charge=charge, spin=spin, scf_conv_tol=scf_conv_tol,
                         domain=domain, on_uncertain=on_uncertain, functional_settings=functional_settings, **kwargs)
        self.fallback_database = None if fallback_database is None else Path(fallback_database)
        self.uncertain_calls = 0
        self.scf_fallback_calls = 0
        self.last_good_atoms: Atoms | None = None
        self.calls = 0
        self.flagged_calls = 0
        self.spurious_calls = 0
        self._warned: set[str] = set()
        self.prediction: Prediction | None = None
        self._load = (device, dtype)
        self._model: HamiltonianPredictor | None = None
        self._chosen = not is_auto(model)  # whether the model (or, mode "scf", no model) is settled
        if self._chosen:
            self._use(model if isinstance(model, HamiltonianPredictor) else load_model(model, device, dtype))

    @property
    def model(self) -> HamiltonianPredictor | None:
        """The model in use; with ``model="auto"`` chosen at the first calculation (``calc.model.name`` says
        which). None in mode ``"scf"`` for a molecule no shipped model covers (PySCF's own guess is used)."""
        if not self._chosen:
            raise InputError("model='auto' is chosen at the first calculation, for its molecule: call "
                             "atoms.get_potential_energy() first, or name a model (`mlwfcalc models` lists them)")
        return self._model

    def _use(self, model: HamiltonianPredictor | None) -> None:
        """Settle the model and the mode it implies (None: the model's recorded energy route); refuse a mode
        the model cannot serve."""
        self._model, self._chosen = model, True
        if model is None:
            return
        mode = self.parameters.mode = self.parameters.mode or model.model.energy_route
        if mode == "ml" and model.energy_head is None:
            raise InputError(f"model {model.path} has no energy head, which mode='ml' needs: use "
                             "mode='harris', 'variational' or 'scf', or fit one with `mlwfcalc train-energy`")
        level = model.model.energy_level
        if mode in ("harris", "variational") and level != model.theory.name:
            raise InputError(f"model {model.name} gives {level} energies, but mode={mode!r} evaluates the "
                             f"{model.theory.name} functional at its density: use mode='ml' for {level}")

    def _choose(self, atoms: Atoms) -> None:
        """``model="auto"``: the shipped model covering ``atoms``, fixed from now on; mode ``"scf"`` goes on
        without one when none covers it."""
        device, dtype = self._load
        try:
            name = choose_model(atoms.numbers)
        except OutOfDomainError as err:
            if self.parameters.mode != "scf":
                err.atoms, err.last_good_atoms = atoms.copy(), self.last_good_atoms
                raise
            self._use(None)
            return
        self._use(load_model(name, device, dtype))

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
        check_state(atoms.numbers, charge, spin, where=atoms.get_chemical_formula())
        if not self._chosen:
            self._choose(atoms)
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
        self.results = ase_results(prediction, energy, forces, self._model and self._model.uncertainty)
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
        raises OutOfDomainError (domain) or UncertainPredictionError (hard limit) as its policies say. Mode
        ``"scf"`` for a state (charge, spin) or a molecule no model covers: PySCF from its own guess."""
        mode = self.parameters.mode
        if mode == "scf" and (self._model is None or not self._model.covers_state(atoms.numbers, charge, spin)):
            check_not_periodic(atoms.pbc)
            check_positions(atoms.positions)
            prediction, energy, forces = self._scf(atoms, charge, spin)
            return prediction, energy, forces, []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", OutOfDomainWarning)
            outside = self.model.check_atoms(atoms, charge, spin, domain=self.parameters.domain)
        if outside:
            self._warn_once("domain", str(caught[-1].message), OutOfDomainWarning)
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
            from .functional import FunctionalSettings, functional_energy

            given = self.parameters.functional_settings
            route = functional_energy(self.model, atoms, mode, self.parameters.forces, charge, spin,
                                      settings=FunctionalSettings(**given) if given is not None else None)
            return prediction, route.energy, route.forces, outside

    def _check_hard_limit(self, prediction: Prediction, atoms: Atoms) -> None:
        """Past the model's hard limit: raise (``on_uncertain`` "raise" or "scf"), or warn once and count ("warn").
        In the functional routes (``harris``, ``variational``) spurious occupied orbitals count as past it: their
        energy is only as good as the density (a validation frame of the organic model with three spurious
        orbitals: Harris forces 19 eV/A off)."""
        try:
            check_hard_limit(prediction.uncertainty, self.model.uncertainty, self.model.name,
                             atoms.get_chemical_formula(), atoms)
            if self.parameters.mode != "ml" and prediction.spurious_orbitals:
                raise UncertainPredictionError(
                    f"{atoms.get_chemical_formula()}: {self.model.name} predicts spurious occupied orbitals "
                    f"{list(prediction.spurious_orbitals)}, so its density, and mode {self.parameters.mode!r}'s energy "
                    "and forces from it, are unreliable here. Compute it exactly (on_uncertain='scf', or mode='scf')",
                    float("inf"), self.model.uncertainty_hard_limit or float("inf"), atoms)
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

            settings = LevelOfTheory.from_name(level)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                (prediction,) = self.model.predict_checked([atoms], [(charge, spin)], energy=False)
            from .basis import BasisLayout

            mol = BasisLayout(settings.basis, atoms.numbers).make_mole(atoms.numbers, atoms.positions / Bohr,
                                                                       charge=charge, spin=spin)
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
        if prediction.uncertainty is None:
            return False
        threshold = self.model.uncertainty_threshold
        if threshold is None or prediction.uncertainty <= threshold:
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
        images = list(images)
        if not self._chosen and images:
            self._choose(images[0])
        if self.parameters.mode != "ml":
            raise InputError(f"calculate_batch needs mode='ml' (got {self.parameters.mode!r}); the "
                             "PySCF-based modes run one molecule at a time: use atoms.calc = calculator")
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
        """PySCF SCF (RKS for a closed shell, UKS for ``spin`` > 0) at the model's level of theory, warm-started
        from the model, then its gradient (``labels``: as the model's labels were made). Where the model does not
        cover the state (or there is no model: PBE/def2-SVP), from PySCF's minao guess, said once."""
        model = self._model
        settings = scf_settings(model, conv_tol or self.parameters.scf_conv_tol)
        mol = scf_mole(atoms, settings, charge, spin)
        mf = settings.make_scf(mol)
        if model is not None and model.covers_state(atoms.numbers, charge, spin):
            with warnings.catch_warnings():  # checked and warned about by calculate()
                warnings.simplefilter("ignore", OutOfDomainWarning)
                mf.kernel(dm0=guess_dm(mol, model, domain="warn"))
        else:
            say_minao_guess(atoms.get_chemical_formula(), charge, spin, model, settings)
            mf.kernel()
        if not mf.converged:
            raise RuntimeError(f"PySCF SCF did not converge in {mf.max_cycle} cycles ({atoms.get_chemical_formula()})")
        forces = -(settings.nuclear_gradient(mf) if labels else mf.nuc_grad_method().set(verbose=0).kernel())
        density = mf.make_rdm1()
        prediction = Prediction(fock=mf.get_fock(), overlap=mf.get_ovlp(), mo_energy=mf.mo_energy,
                                mo_coeff=mf.mo_coeff, mo_occ=mf.mo_occ,
                                density_matrix=density if density.ndim == 2 else density.sum(axis=0), mol=mol,
                                energy=float(mf.e_tot), forces=forces)
        return prediction, float(mf.e_tot), forces

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
