"""The ASE calculator with the shipped water model: caching, optimisation, modes, accessors, bad input."""

import json
import warnings

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.calculators.calculator import PropertyNotImplementedError, get_calculator_class
from ase.io.cube import read_cube_data
from ase.optimize import BFGS
from ase.units import Bohr, Hartree

import mlwfcalc
from mlwfcalc import MLWFCalculator
from mlwfcalc.pyscf import reference_scf
from mlwfcalc.validation import InputError


@pytest.fixture(scope="module")
def model():
    return mlwfcalc.load_model("water-pbe-def2svp", device="cpu")


@pytest.fixture(scope="module")
def pyscf_water(model):
    """PySCF's own PBE/def2-SVP answer (the model's level of theory) for a distorted water."""
    atoms = molecule("H2O")
    atoms.positions[1] += [0.03, -0.02, 0.04]
    mf = reference_scf(model, model.make_mole(atoms), conv_tol=1e-11)
    mf.kernel()
    return atoms, mf


def test_registered_with_ase():
    assert get_calculator_class("mlwfcalc") is MLWFCalculator


def test_one_pass_per_geometry_and_recomputation(model, water):
    calc = MLWFCalculator(model)
    water.calc = calc
    forces = water.get_forces()
    energy = water.get_potential_energy()
    dipole, charges = water.get_dipole_moment(), water.get_charges()
    assert calc.calls == 1
    assert forces.shape == (3, 3) and dipole.shape == (3,) and charges.shape == (3,)
    assert abs(charges.sum()) < 1e-8 and isinstance(energy, float)
    assert water.get_potential_energy(force_consistent=True) == energy
    water.positions[0, 0] += 0.01
    water.get_potential_energy()
    assert calc.calls == 2
    water.info["charge"] = 1  # charge from atoms.info is watched too; this model refuses it
    with pytest.raises(InputError, match="charge 1"):
        water.get_potential_energy()
    del water.info["charge"]
    water.numbers[0] = 1  # H3 (odd electrons) is refused, after a recomputation was triggered
    with pytest.raises(InputError):
        water.get_potential_energy()


def test_bfgs_converges_with_one_call_per_step(model, pyscf_water):
    atoms, mf = pyscf_water
    atoms = atoms.copy()
    calc = MLWFCalculator(model)
    atoms.calc = calc
    optimiser = BFGS(atoms, logfile=None)
    assert optimiser.run(fmax=0.01, steps=100)
    assert calc.calls == optimiser.nsteps + 1  # the optimiser's energy reads hit the cache
    # the optimum is PySCF's own PBE/def2-SVP optimum (found with the exact 'scf' mode)
    mf_opt = _pyscf_optimum(model, atoms)
    assert np.abs(atoms.get_distance(0, 1) - mf_opt[0]) < 2e-3
    assert abs(atoms.get_angle(1, 0, 2) - mf_opt[1]) < 0.5


def _pyscf_optimum(model, atoms):
    """O-H distance (A) and angle (degrees) of the PySCF optimum, starting from ``atoms``."""
    reference = atoms.copy()
    reference.calc = MLWFCalculator(model, mode="scf")
    BFGS(reference, logfile=None).run(fmax=0.005, steps=50)
    return reference.get_distance(0, 1), reference.get_angle(1, 0, 2)


def test_modes_against_pyscf(model, pyscf_water):
    atoms, mf = pyscf_water
    e_ref = mf.e_tot * Hartree
    forces_ref = -mf.nuc_grad_method().kernel() * Hartree / Bohr
    results = {}
    for mode in ("ml", "variational", "scf"):
        a = atoms.copy()
        a.calc = MLWFCalculator(model, mode=mode)
        results[mode] = a.get_potential_energy(), a.get_forces()
    assert abs(results["scf"][0] - e_ref) < 1e-6 and np.abs(results["scf"][1] - forces_ref).max() < 1e-4
    assert abs(results["variational"][0] - e_ref) < 2e-3  # second order in the density error
    assert results["variational"][0] >= e_ref - 1e-6  # and variational
    assert abs(results["ml"][0] - e_ref) < 0.02 and np.abs(results["ml"][1] - forces_ref).max() < 0.2


def test_orbital_accessors_and_cube_files(model, pyscf_water, tmp_path):
    atoms, mf = pyscf_water
    atoms = atoms.copy()
    calc = MLWFCalculator(model)
    atoms.calc = calc
    atoms.get_potential_energy()
    eigenvalues, occupations = calc.get_eigenvalues(), calc.get_occupation_numbers()
    assert np.abs(eigenvalues[:5] - mf.mo_energy[:5] * Hartree).max() < 0.1
    assert occupations.sum() == 10 and calc.get_number_of_spins() == 1
    homo, lumo = calc.get_homo_lumo()
    assert homo == eigenvalues[4] and lumo == eigenvalues[5] and homo < calc.get_fermi_level() < lumo
    assert calc.get_density_matrix().shape == (24, 24) and calc.get_mo_coefficients().shape == (24, 24)
    assert calc.get_mole().nao == 24
    calc.write_density_cube(tmp_path / "density.cube")
    density, cube_atoms = read_cube_data(str(tmp_path / "density.cube"))
    voxel = abs(np.linalg.det(cube_atoms.cell / np.array(density.shape)[:, None])) / Bohr**3
    assert abs(density.sum() * voxel - 10) < 1e-2
    calc.write_orbital_cube("homo", tmp_path / "homo.cube", spacing=0.3)
    assert (tmp_path / "homo.cube").stat().st_size > 1000
    with pytest.raises(IndexError):
        calc.get_eigenvalues(spin=1)


def test_bad_input_is_refused_clearly(model):
    calc = MLWFCalculator(model)
    water = molecule("H2O")
    water.calc = calc
    with pytest.raises(PropertyNotImplementedError):
        water.get_stress()
    periodic = molecule("H2O", cell=[5, 5, 5], pbc=True)
    periodic.calc = calc
    with pytest.raises(InputError, match="periodic"):
        periodic.get_potential_energy()
    ammonia = molecule("NH3")
    ammonia.calc = MLWFCalculator(model)
    with pytest.raises(InputError, match="element.*N.*not supported"):
        ammonia.get_forces()
    broken = molecule("H2O")
    broken.positions[0, 0] = np.nan
    broken.calc = MLWFCalculator(model)
    with pytest.raises(InputError, match="non-finite"):
        broken.get_potential_energy()
    with pytest.raises(InputError, match="unknown mode"):
        MLWFCalculator(model, mode="dft")
    with pytest.raises(InputError, match="charge 2"):
        Atoms("H2O", positions=molecule("H2O").positions, calculator=MLWFCalculator(model, charge=2)).get_forces()


def test_predict_reads_charge_and_spin_from_atoms_info():
    """``model.predict`` honours ``atoms.info`` as the calculator does: a cation is refused, not predicted neutral."""
    model = mlwfcalc.load_model("water-pbe-def2svp", device="cpu")
    cation = molecule("H2O")
    cation.info.update(charge=1, spin=1)
    with pytest.raises(InputError, match="charge"):
        model.predict(cation)
    neutral = molecule("H2O")
    neutral.info.update(charge=1, spin=1)
    assert model.predict(neutral, charge=0, spin=0).mol.charge == 0  # explicit arguments win


class _CorruptedAlongNearNullSpace(mlwfcalc.predictor.HamiltonianPredictor):
    """The malondialdehyde model with F's component along the overlap's smallest eigenvector u set to
    -0.002 Hartree (converged: about +0.002): an F error of a few micro-Hartree (MAE), what a model trained
    on the F loss alone does on some geometries (see mlwfcalc.electronic)."""

    def network_pass(self, molecules, moles, energy=False, forces=False):
        out = super().network_pass(molecules, moles, energy, forces)
        for k, mol in enumerate(moles):
            _, u = np.linalg.eigh(mol.intor("int1e_ovlp"))
            fock = out.fock[k, :mol.nao, :mol.nao]
            fock -= (u[:, 0] @ fock @ u[:, 0] + 0.002) * np.outer(u[:, 0], u[:, 0])
        return out


def test_a_spurious_occupied_orbital_is_warned_once_counted_and_reported():
    from mlwfcalc.electronic import SpuriousOrbitalWarning
    from mlwfcalc.io import MODELS_DIR

    shipped = mlwfcalc.load_model("malondialdehyde-pbe-def2svp", device="cpu")
    reference = json.loads((MODELS_DIR / "malondialdehyde-pbe-def2svp" / "reference.json").read_text())
    atoms = Atoms(reference["numbers"], positions=reference["positions_angstrom"])
    atoms.calc = MLWFCalculator(shipped)
    atoms.get_potential_energy()
    assert atoms.calc.results["spurious_orbitals"] == [] and atoms.calc.spurious_calls == 0

    corrupted = _CorruptedAlongNearNullSpace(shipped.model, shipped.device, shipped.path)
    atoms.calc = MLWFCalculator(corrupted)
    with pytest.warns(SpuriousOrbitalWarning, match="spurious"):
        atoms.get_potential_energy()
    assert atoms.calc.results["spurious_orbitals"] and atoms.calc.spurious_calls == 1
    atoms.positions[0] += 0.01
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpuriousOrbitalWarning)  # warned once per calculator
        atoms.get_potential_energy()
    assert atoms.calc.spurious_calls == 2
    with pytest.warns(SpuriousOrbitalWarning):  # the Python API warns on every prediction
        assert corrupted.predict(atoms).spurious_orbitals
