"""Energies and forces from the Kohn-Sham functional at the model's density (modes "harris" and
"variational"): the forces are the exact negative gradient of the energy reported (central finite
differences of that same energy), the frozen-density gradient stays available, bad states are refused."""

import warnings

import numpy as np
import pytest
import torch
from ase.build import molecule
from ase.units import Bohr, Hartree

from mlwfcalc import InputError, MLWFCalculator
from mlwfcalc.functional import FunctionalSettings, functional_energy
from mlwfcalc.predictor import load_model

STEP = 1e-3  # Bohr


def _finite_difference_forces(model, atoms, route, atoms_to_check, settings=None):
    """``-dE/dR`` (Hartree/Bohr) by central differences of the route's energy, for some atoms."""
    forces = np.zeros((len(atoms_to_check), 3))
    for row, a in enumerate(atoms_to_check):
        for x in range(3):
            energies = []
            for sign in (1, -1):
                moved = atoms.copy()
                moved.positions[a, x] += sign * STEP * Bohr
                energies.append(functional_energy(model, moved, route, forces=None, settings=settings).energy)
            forces[row, x] = -(energies[0] - energies[1]) / (2 * STEP)
    return forces


@pytest.fixture(scope="module")
def water_model():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_model("water-pbe-def2svp", "cpu", torch.float64)


@pytest.mark.parametrize("route", ["variational", "harris"])
def test_forces_are_the_exact_gradient_of_the_energy_water(water_model, route):
    atoms = molecule("H2O")
    atoms.rattle(0.05, seed=3)
    exact = functional_energy(water_model, atoms, route, forces="exact")
    reference = _finite_difference_forces(water_model, atoms, route, range(len(atoms)))
    assert np.abs(exact.forces - reference).max() < 1e-5  # Hartree/Bohr
    frozen = functional_energy(water_model, atoms, route, forces="frozen-density")
    assert frozen.energy == pytest.approx(exact.energy, abs=1e-10)
    assert np.abs(frozen.forces - exact.forces).max() > 1e-6  # the response term is not zero


@pytest.mark.parametrize("route", ["variational", "harris"])
def test_cheaper_fock_builds_keep_the_forces_exact(water_model, route):
    """RI-J on a coarse grid (what benchmarks/functional_cost.py weighs against its cost) is another energy, and
    the forces are still its exact gradient; the calculator takes the settings and refuses bad ones."""
    atoms = molecule("H2O")
    atoms.rattle(0.05, seed=4)
    cheap = FunctionalSettings(grid_level=1, ri_j=True)
    result = functional_energy(water_model, atoms, route, forces="exact", settings=cheap)
    reference = _finite_difference_forces(water_model, atoms, route, range(len(atoms)), settings=cheap)
    assert np.abs(result.forces - reference).max() < 1e-5  # Hartree/Bohr
    default = functional_energy(water_model, atoms, route, forces=None)
    assert 1e-7 < abs(result.energy - default.energy) < 1e-3  # another grid and J, close to the labels'
    calc = MLWFCalculator(water_model, mode=route, functional_settings={"grid_level": 1, "ri_j": True})
    atoms.calc = calc
    assert atoms.get_potential_energy() == pytest.approx(result.energy * Hartree, abs=1e-8)
    with pytest.raises(InputError, match="grid_level"):
        MLWFCalculator(water_model, mode=route, functional_settings={"grid": 1})
    with pytest.raises(InputError, match="0-9"):
        MLWFCalculator(water_model, mode=route, functional_settings={"grid_level": 12})


@pytest.mark.slow
@pytest.mark.parametrize("name, formula", [("ethanol-pbe-def2svp", "CH3CH2OH"), ("organic-pbe-def2svp", "CH3CONH2")])
def test_forces_are_the_exact_gradient_of_the_energy_larger_molecules(name, formula):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_model(name, "cpu", torch.float64)
    atoms = molecule(formula)
    atoms.rattle(0.03, seed=5)
    exact = functional_energy(model, atoms, "harris", forces="exact")
    checked = [0, len(atoms) - 1]  # a heavy atom and a hydrogen
    reference = _finite_difference_forces(model, atoms, "harris", checked)
    assert np.abs(exact.forces[checked] - reference).max() < 1e-5


def test_calculator_modes_report_the_route_and_refuse_what_they_cannot_do(water_model):
    atoms = molecule("H2O")
    atoms.calc = MLWFCalculator(water_model, mode="harris")
    energy = atoms.get_potential_energy()
    route = functional_energy(water_model, atoms, "harris")
    assert energy == pytest.approx(route.energy * Hartree, abs=1e-6)
    assert np.allclose(atoms.get_forces(), route.forces * Hartree / Bohr, atol=1e-6)
    with pytest.raises(InputError, match="forces="):
        MLWFCalculator(water_model, mode="harris", forces="numerical")
    with pytest.raises(InputError, match="closed shells"):
        functional_energy(water_model, atoms, "harris", spin=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InputError, match="mode='ml'"):
            MLWFCalculator("water-ccsdt", mode="harris")


def test_predict_reports_the_route_against_pyscf(capsys):
    """``mlwfcalc predict --mode harris --compare``: the route's energy and exact forces against PySCF's."""
    import re

    from mlwfcalc.cli import main

    assert main(["predict", "H2O", "--model", "water-pbe-def2svp", "--mode", "harris", "--compare"]) == 0
    out = capsys.readouterr().out
    found = re.search(r"harris: energy error ([-+\d.]+) meV/atom, force MAE ([\d.]+) meV/A", out)
    assert found, out
    assert abs(float(found.group(1))) < 1 and float(found.group(2)) < 20  # the card: 0.5 meV/atom, 10 meV/A scale
    assert main(["predict", "H2O", "--model", "water-ccsdt", "--mode", "harris"]) != 0  # a transfer model
