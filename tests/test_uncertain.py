"""A run that walks off the data stops: the uncertainty's hard limit refuses (calculator, predict, PySCF
guess), ``on_uncertain="warn"`` returns and counts, ``on_uncertain="scf"`` computes the step exactly and
collects it as a label; a refused run keeps its last good geometry."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

import mlwfcalc
from mlwfcalc import MLWFCalculator
from mlwfcalc.data import LabelDatabase, LabelledDataset
from mlwfcalc.pyscf import guess_dm
from mlwfcalc.uncertainty import UncertainPredictionError

SCANS = Path(__file__).parent / "data" / "scans"


def _scan_points(name):
    record = json.loads((SCANS / f"{name}.json").read_text())
    molecule = record["molecules"][0]
    return [(Atoms(molecule["numbers"], positions=p["positions"]), p) for p in molecule["points"]]


@pytest.fixture(scope="module")
def water_scan():
    return {round(p["value"], 2): (atoms, p) for atoms, p in _scan_points("water-pbe-def2svp") if "O-H" in p["scan"]}


@pytest.fixture(scope="module")
def water_model():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mlwfcalc.load_model("water-pbe-def2svp", device="cpu")


def test_past_the_hard_limit_the_calculator_predict_and_guess_refuse(water_model, water_scan):
    atoms, _ = water_scan[1.2]  # O-H 1.2 A: inside the distance domain (seen up to 1.14 A), outside the data
    atoms.calc = MLWFCalculator(water_model)
    with pytest.raises(UncertainPredictionError, match="H2O.*hard limit.*on_uncertain='scf'") as caught:
        atoms.get_potential_energy()
    assert caught.value.uncertainty > caught.value.limit == water_model.uncertainty_hard_limit
    assert isinstance(caught.value, mlwfcalc.OutOfDomainError)
    with pytest.raises(UncertainPredictionError):
        water_model.predict(atoms)
    with pytest.raises(UncertainPredictionError):
        guess_dm(water_model.make_mole(atoms), water_model)
    assert water_model.predict(atoms, on_uncertain="warn").uncertainty > water_model.uncertainty_hard_limit


def test_warn_returns_and_counts(water_model, water_scan):
    calc = MLWFCalculator(water_model, on_uncertain="warn")
    for value in (0.9, 1.0, 1.2):
        atoms, _ = water_scan[value]
        atoms.calc = calc
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            atoms.get_potential_energy()
    assert calc.uncertain_calls == 1 and calc.calls == 3


def test_scf_fallback_is_exact_and_collects_labels(water_model, water_scan, tmp_path):
    database = tmp_path / "fallback.db"
    calc = MLWFCalculator(water_model, on_uncertain="scf", fallback_database=database)
    for value in (1.2, 1.0):
        atoms, point = water_scan[value]
        atoms.calc = calc
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            forces = atoms.get_forces()
        assert calc.results["scf_fallback"] is (value == 1.2)
        if value == 1.2:  # the exact PBE/def2-SVP answer of the scan's reference
            assert np.abs(forces - np.array(point["forces_ev_per_a"])).max() < 1e-4  # eV/A
            assert atoms.get_potential_energy() == pytest.approx(point["energy_ev"], abs=1e-5)
    assert calc.scf_fallback_calls == 1
    assert LabelDatabase(database).settings == water_model.theory  # what train --init-from takes
    (sample,) = LabelledDataset(database).samples
    assert sample.fock.shape == (24, 24) and sample.forces is not None


def test_a_refused_run_keeps_its_last_good_geometry(water_model, water_scan):
    calc = MLWFCalculator(water_model)
    good, _ = water_scan[1.0]
    good.calc = calc
    energy = good.get_potential_energy()
    bad, _ = water_scan[1.2]
    bad.calc = calc
    with pytest.raises(UncertainPredictionError) as caught:
        bad.get_forces()
    kept = caught.value.last_good_atoms
    assert np.array_equal(kept.positions, good.positions) and kept.get_potential_energy() == energy
    assert np.array_equal(caught.value.atoms.positions, bad.positions) and calc.last_good_atoms is kept


def test_bad_policies_are_refused(water_model):
    with pytest.raises(mlwfcalc.InputError, match="on_uncertain"):
        MLWFCalculator(water_model, on_uncertain="ignore")
    with pytest.raises(mlwfcalc.InputError, match="fallback_database"):
        MLWFCalculator(water_model, fallback_database="x.db")
