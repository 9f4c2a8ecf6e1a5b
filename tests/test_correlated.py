"""Correlated labels (issue 18): MP2, CCSD and CCSD(T) energies, analytic forces and finite-field dipoles."""

import numpy as np
import pytest
from ase import Atoms
from ase.io import write
from pyscf import gto

from mlwfcalc.cli import main
from mlwfcalc.data.correlated import _converged_rhf, correlated_energy, correlated_labels, field_dipole
from mlwfcalc.data.dataset import LabelledDataset
from mlwfcalc.data.database import LabelDatabase
from mlwfcalc.theory import LevelOfTheory
from mlwfcalc.validation import InputError

WATER = "O 0 0 0.1; H 0 0.76 -0.5; H 0.05 -0.77 -0.48"


@pytest.fixture(scope="module")
def water():
    return gto.M(atom=WATER, basis="6-31g", verbose=0)


def test_field_dipole_equals_the_analytic_rhf_dipole(water):
    """Sign, origin and nuclear part of the finite-field dipole, checked where PySCF has the analytic one."""
    settings = LevelOfTheory(method="MP2", basis="6-31g")
    analytic = _converged_rhf(water, settings).dip_moment(unit="AU", verbose=0)
    numeric = field_dipole(water, lambda field: _converged_rhf(water, settings, field).e_tot)
    np.testing.assert_allclose(numeric, analytic, atol=1e-5)


@pytest.mark.parametrize("method", ["MP2", pytest.param("CCSD", marks=pytest.mark.slow),
                                    pytest.param("CCSD(T)", marks=pytest.mark.slow)])
def test_correlated_forces_are_minus_the_energy_gradient(water, method):
    settings = LevelOfTheory(method=method, basis="6-31g")
    energy, forces, dipole, _ = correlated_labels(water, settings)
    reference = correlated_energy(_converged_rhf(water, settings), method)
    assert energy == pytest.approx(reference, abs=1e-9)
    step, coords = 1e-4, water.atom_coords()

    def displaced_energy(dy):
        moved = coords.copy()
        moved[2, 1] += dy
        return correlated_energy(_converged_rhf(water.set_geom_(moved, unit="Bohr", inplace=False), settings), method)

    assert forces[2, 1] == pytest.approx(-(displaced_energy(step) - displaced_energy(-step)) / (2 * step), abs=1e-7)
    # correlation lowers the RHF dipole of water (about 1.03 e*Bohr along -z here)
    rhf_dipole = _converged_rhf(water, settings).dip_moment(unit="AU", verbose=0)
    assert 0.9 < np.linalg.norm(dipole) < np.linalg.norm(rhf_dipole)


def test_label_command_writes_a_ccsd_t_database_that_hamiltonian_training_refuses(tmp_path, capsys):
    frames = tmp_path / "water.xyz"
    base = Atoms("OH2", positions=[(0, 0, 0.1), (0, 0.76, -0.5), (0.05, -0.77, -0.48)])
    moved = base.copy()
    moved.positions[1, 1] += 0.05
    write(frames, [base, moved])
    database = tmp_path / "ccsdt.db"
    assert main(["label", str(frames), "-o", str(database), "--method", "ccsd(t)", "--basis", "6-31g",
                 "--workers", "1", "-q"]) == 0
    assert "labelled 2, failed 0" in capsys.readouterr().out
    db = LabelDatabase(database)
    assert db.settings.method == "CCSD(T)" and db.settings.xc == "hf" and db.settings.name == "CCSD(T)/6-31g"
    assert "finite field" in db._db.metadata["dipole_from"]
    with pytest.raises(InputError, match="--transfer"):
        LabelledDataset(database)
    samples = LabelledDataset(database, kohn_sham=False).samples
    assert all(s.fock is None and s.dipole.shape == (3,) for s in samples)
    main(["label", str(frames), "-o", str(database), "--method", "ccsd(t)", "--basis", "6-31g", "--workers", "1", "-q"])
    assert "labelled 0, failed 0, already in the database 2" in capsys.readouterr().out
    # one database, one level of theory; and --xc belongs to rks
    assert main(["label", str(frames), "-o", str(database), "--method", "ccsd", "--basis", "6-31g", "-q"]) == 2
    assert "other settings (method: CCSD(T) there, CCSD now)" in capsys.readouterr().err
    assert main(["label", str(frames), "-o", str(tmp_path / "x.db"), "--method", "mp2", "--xc", "pbe", "-q"]) == 2
    assert "drop --xc" in capsys.readouterr().err


def test_an_unconverged_reference_is_a_failed_row_with_its_reason(tmp_path, capsys):
    frames = tmp_path / "water.xyz"
    write(frames, Atoms("OH2", positions=[(0, 0, 0.1), (0, 0.76, -0.5), (0.05, -0.77, -0.48)]))
    database = tmp_path / "mp2.db"
    main(["label", str(frames), "-o", str(database), "--method", "mp2", "--basis", "6-31g", "--max-cycle", "2",
          "--workers", "1", "-q"])
    assert "failed 1" in capsys.readouterr().out
    (row,) = LabelDatabase(database).rows("failed")
    assert "RHF reference not converged within max_cycle=2" in row.reason


def test_a_level_of_theory_is_rebuilt_from_its_name():
    from mlwfcalc.theory import LevelOfTheory

    for level in (LevelOfTheory(method="CCSD(T)", basis="cc-pvtz"), LevelOfTheory(method="MP2", basis="cc-pvdz"),
                  LevelOfTheory()):
        assert LevelOfTheory.from_name(level.name) == level
