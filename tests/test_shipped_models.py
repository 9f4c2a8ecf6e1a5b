"""Every shipped model loads, has a consistent config, and reproduces its stored PySCF reference."""

import json
import warnings

import numpy as np
import pytest
from ase import Atoms
from ase.units import Hartree

import mlwfcalc
from mlwfcalc.notices import forget
from mlwfcalc.io import MODELS_DIR

SHIPPED = sorted(p for p in MODELS_DIR.glob("*") if (p / "config.json").exists())


def test_the_default_model_is_shipped():
    assert "water-pbe-def2svp" in [m["name"] for m in mlwfcalc.list_models()]


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_model_matches_its_reference_within_the_card(path):
    config = json.loads((path / "config.json").read_text())
    assert config["format"] == "mlwfcalc-model" and config["basis"] and config["functional"]
    assert (path / "README.md").exists(), "every shipped model needs a model card"
    if config.get("preliminary"):  # a model not fit for everything says so, once per process, in one line
        forget()
        with pytest.warns(UserWarning, match="preliminary") as said:
            model = mlwfcalc.load_model(path.name, device="cpu")
        said = [w for w in said if issubclass(w.category, UserWarning)]  # not a ResourceWarning of garbage collection
        assert len(said) == 1, [str(w.message) for w in said]
        assert "\n" not in str(said[0].message) and len(str(said[0].message)) < 200
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            mlwfcalc.load_model(path.name, device="cpu")  # said once: not again
        listed = {m["name"]: m for m in mlwfcalc.list_models()}[path.name]
        assert listed["preliminary"] == config["preliminary"]
    else:
        model = mlwfcalc.load_model(path.name, device="cpu")
    assert model.basis == config["basis"] and model.functional == config["functional"]
    reference = json.loads((path / "reference.json").read_text())
    atoms = Atoms(reference["numbers"], positions=reference["positions_angstrom"])
    result = model.predict(atoms)
    if model.energy_head is not None:  # the card's energy MAE is in config.json; 10x that bounds one geometry
        # (a transfer model's energy is at its high level: reference.json holds that energy, and the
        # figure is its fine-tuning validation MAE)
        card_mev = (config["transfer"]["validation"]["energy_mae_mev"] if "transfer" in config
                    else config["energy"]["training"]["test"]["energy_mae_mev"])
        error_mev = 1000 * Hartree * abs(result.energy - reference["energy_hartree"])
        assert error_mev < max(10 * card_mev, 1.0), error_mev
    fock = np.asarray(reference["fock_hartree"])
    mae_uha = 1e6 * np.abs(result.fock - fock).mean()
    # one geometry scatters around the card's test-set MAE; twice that is the bound
    assert mae_uha < 2 * reference["card_fock_mae_uha"], mae_uha
    assert np.allclose(result.fock, result.fock.T)
    # its orbitals are solved where its card says: the whole basis, or the overlap's well-conditioned subspace
    subspace = config.get("orbital_subspace", {}).get("overlap_threshold", 0.0)
    assert model.overlap_subspace == subspace
    s = np.linalg.eigvalsh(result.overlap)
    c = result.mo_coeff
    assert c.shape == (result.mol.nao, result.mol.nao - int((s < subspace).sum()))
    assert np.allclose(c.T @ result.overlap @ c, np.eye(c.shape[1]), atol=1e-6)
    assert np.allclose(result.density_matrix, (c * result.mo_occ) @ c.T)
    if subspace:
        with warnings.catch_warnings():  # the preliminary mark, checked above
            warnings.simplefilter("ignore")
            whole = mlwfcalc.load_model(path.name, device="cpu", overlap_subspace=0.0).predict(atoms)
        assert whole.mo_coeff.shape == (result.mol.nao, result.mol.nao)
        assert np.allclose(whole.fock, result.fock)


def test_readme_main_job_runs(tmp_path):
    """The README's main job (examples/quickstart.py), shortened to 2 MD steps."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[1] / "examples" / "quickstart.py"
    output = tmp_path / "quickstart.json"
    run = subprocess.run([sys.executable, str(script), "--steps", "2", "--output", str(output)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Warning" not in run.stderr and "Overwritten" not in run.stderr, run.stderr[-2000:]  # a clean first run
    record = json.loads(output.read_text())
    assert len(record["md"]) == 3
    assert np.ptp([row["total_eV"] for row in record["md"]]) < 5e-3  # NVE: total energy kept
    assert record["scf"]["cycles_from_model"] < record["scf"]["cycles_from_minao"]
    assert abs(record["scf"]["energy_difference_hartree"]) < 1e-8


@pytest.mark.skipif(not (MODELS_DIR / "water-ccsdt" / "config.json").exists(), reason="water-ccsdt not shipped")
def test_water_ccsdt_is_a_whole_calculator(tmp_path):
    """The transfer model answers every property and accessor; its energies follow CCSD(T), its F PBE."""
    from ase.build import molecule

    atoms = molecule("H2O")
    atoms.calc = mlwfcalc.MLWFCalculator(model="water-ccsdt")
    model = atoms.calc.model
    assert model.model.energy_level.startswith("CCSD(T)") and model.functional == "pbe"
    assert model.uncertainty.config.quantity == "forces"
    forces = atoms.get_forces()
    assert np.abs(forces.sum(axis=0)).max() < 1e-6  # no net force
    assert abs(atoms.get_dipole_moment()[2]) > 0.3  # e*A; water's dipole lies along z here
    assert atoms.get_charges()[0] < 0 and atoms.calc.results["uncertainty_unit"] == "eV/A"
    homo, lumo = atoms.calc.get_homo_lumo()
    assert lumo - homo > 5  # eV
    assert atoms.calc.get_density_matrix().shape == (24, 24)
    atoms.calc.write_density_cube(tmp_path / "density.cube", spacing=0.4)
    atoms.calc.write_orbital_cube("homo", tmp_path / "homo.cube", spacing=0.4)
    assert (tmp_path / "homo.cube").stat().st_size > 1000


def test_models_command_says_at_which_level_each_model_answers(capsys):
    from mlwfcalc.cli import main

    assert main(["models"]) == 0
    lines = {line.split(":")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "F at PBE/def2-svp, elements H O, domain H2O" in lines["water-pbe-def2svp"]
    if "water-ccsdt" in lines:
        assert "energies and forces at CCSD(T)/cc-pvtz" in lines["water-ccsdt"]


def test_the_organic_model_measures_its_overlap_subspace_on_held_out_molecules(tmp_path):
    """The choice of benchmarks/overlap_subspace.py on a few archived test molecules: every threshold is
    evaluated with the subspace's own cost, and the model is left solving where its card says."""
    from mlwfcalc.cli import main
    from mlwfcalc.data import LabelledDataset
    from mlwfcalc.training.evaluation import choose_overlap_subspace

    archive = MODELS_DIR.parent / "datasets" / "organic-pbe-def2svp" / "test"
    assert main(["unpack-labels", str(archive), "-o", str(tmp_path / "test.db")]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # preliminary
        model = mlwfcalc.load_model("organic-pbe-def2svp", device="cpu")
    recorded = model.overlap_subspace
    assert recorded > 0
    chosen, reports = choose_overlap_subspace(model, LabelledDataset(tmp_path / "test.db"), list(range(0, 120, 15)),
                                              (0.0, recorded), progress=False)
    assert chosen in reports and model.overlap_subspace == recorded
    whole, sub = reports[0.0], reports[recorded]
    assert whole.subspace_orbital_energy_cost_uha is None and whole.overlap_subspace == 0.0
    assert 0 < sub.subspace_orbital_energy_cost_uha < 100 and 0 < sub.subspace_dipole_cost_debye < 0.1
    assert whole.fock_mae_uha == sub.fock_mae_uha  # F is the network's either way; only its solve differs
    assert sub.spurious_orbital_percent <= whole.spurious_orbital_percent
    from mlwfcalc.validation import InputError

    for bad in (-1e-3, 1.0):  # a threshold outside [0, 1) is refused, wherever it is set
        with pytest.raises(InputError, match="overlap eigenvalue threshold"):
            model.overlap_subspace = bad
    assert model.overlap_subspace == recorded
