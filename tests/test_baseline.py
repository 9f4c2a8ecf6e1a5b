"""The zeroth-step Hamiltonian H0 (issue 42): its atomic densities do not move with the geometry, it is far closer
to the converged F than H_core, its derivative is exact (central differences), and a model that learns F - H0
trains, saves its H0 settings, and keeps the functional routes' forces the exact gradient of their energy."""

import json
import warnings

import numpy as np
import pytest
import torch
from ase.build import molecule
from ase.units import Bohr

from mlwfcalc.baseline import ZerothStepSettings, atomic_density, zeroth_step_hamiltonian
from mlwfcalc.basis import BasisLayout
from mlwfcalc.cli import main
from mlwfcalc.io import read_config
from mlwfcalc.pyscf import reference_scf


def _mole(atoms):
    return BasisLayout("def2-svp", atoms.numbers).make_mole(atoms.numbers, atoms.positions / Bohr)


def test_atomic_densities_are_the_atoms_own_and_count_the_electrons():
    atoms = molecule("CH3OH")
    moved = atoms.copy()
    moved.rattle(0.1, seed=2)
    mol, mol_moved = _mole(atoms), _mole(moved)
    density = atomic_density(mol)
    assert np.array_equal(density, atomic_density(mol_moved))  # no geometry in it
    assert np.trace(density @ mol.intor("int1e_ovlp")) == pytest.approx(mol.nelectron, abs=1e-6)
    first = mol.aoslice_by_atom()[0]
    assert not density[first[2]:first[3], first[3]:].any()  # block diagonal in the atoms


@pytest.mark.parametrize("settings", [ZerothStepSettings(grid_level=0, ri_j=True),
                                      ZerothStepSettings(grid_level=2, ri_j=False)])
def test_h0_derivative_is_exact(settings):
    atoms = molecule("CH3OH")
    atoms.rattle(0.05, seed=1)
    positions = torch.as_tensor(atoms.positions / Bohr).requires_grad_(True)
    h0 = zeroth_step_hamiltonian(_mole(atoms), positions, settings)
    x = torch.as_tensor(np.random.default_rng(0).normal(size=h0.shape))
    (analytic,) = torch.autograd.grad((h0 * x).sum(), positions)
    step = 1e-4
    for atom, axis in [(0, 2), (1, 0), (4, 1)]:
        values = []
        for sign in (1, -1):
            moved = atoms.copy()
            moved.positions[atom, axis] += sign * step * Bohr
            values.append(float((zeroth_step_hamiltonian(_mole(moved), torch.as_tensor(moved.positions / Bohr),
                                                         settings) * x).sum()))
        assert float(analytic[atom, axis]) == pytest.approx((values[0] - values[1]) / (2 * step), abs=2e-5)


def test_h0_is_close_to_the_converged_fock_matrix():
    atoms = molecule("CH3CHO")
    mol = _mole(atoms)
    mf = reference_scf(None, mol)
    mf.kernel()
    fock = mf.get_fock()
    h0 = zeroth_step_hamiltonian(mol, torch.as_tensor(atoms.positions / Bohr), ZerothStepSettings()).numpy()
    assert np.abs(h0 - fock).mean() < 0.01 * np.abs(mf.get_hcore() - fock).mean()
    assert np.abs(h0 - fock).mean() < 5e-3  # Hartree: a few milli-Hartree, as SPHNet's minao H0


@pytest.mark.parametrize("as_input", [False, True])
def test_an_h0_model_trains_saves_its_settings_and_keeps_exact_forces(water_db, tmp_path, as_input):
    """With H0 also the network's input (zeroth_step_input), the forces through it stay exact too."""
    from mlwfcalc.functional import functional_energy
    from mlwfcalc.predictor import load_model

    toml = tmp_path / "h0.toml"
    toml.write_text('[model]\ntarget = "fock-h0"\nchannels = 4\nnum_layers = 1\nzeroth_step = {grid_level = 1}\n'
                    + ("zeroth_step_input = true\n" if as_input else ""))
    run = tmp_path / "run"
    assert main(["train", str(water_db), "-o", str(run), "--config", str(toml), "--max-steps", "3", "--val-every", "3",
                 "--batch-size", "2", "--n-train", "6", "--n-val", "2", "--dtype", "float64", "-q"]) == 0
    config = read_config(run / "best")["model"]
    assert config["target"] == "fock-h0"
    assert config["zeroth_step"] == {"xc": "pbe", "grid_level": 1, "ri_j": True}
    assert config.get("zeroth_step_input", False) == as_input
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_model(run / "best", "cpu", torch.float64)
    atoms = molecule("H2O")
    atoms.rattle(0.03, seed=4)
    exact = functional_energy(model, atoms, "variational", forces="exact")
    step = 1e-3  # Bohr
    for atom, axis in [(0, 1), (2, 2)]:
        energies = []
        for sign in (1, -1):
            moved = atoms.copy()
            moved.positions[atom, axis] += sign * step * Bohr
            energies.append(functional_energy(model, moved, "variational", forces=None).energy)
        assert exact.forces[atom, axis] == pytest.approx(-(energies[0] - energies[1]) / (2 * step), abs=1e-5)
    assert json.loads((run / "best" / "config.json").read_text())["model"]["zeroth_step"]["grid_level"] == 1
