"""Transfer learning (issue 18): fine-tuning a Kohn-Sham model through its wavefunction on MP2 labels."""

import warnings

import numpy as np
import pytest
import torch
from ase.build import molecule
from ase.io import write
from ase.units import Bohr, Hartree

import mlwfcalc
from mlwfcalc.cli import main
from mlwfcalc.data.dataset import LabelledDataset, Sample
from mlwfcalc.energy import EnergyConfig, EnergyHead
from mlwfcalc.io import read_model
from mlwfcalc.model import MLWFModel
from mlwfcalc.predictor import HamiltonianPredictor
from mlwfcalc.training.evaluation import evaluate
from mlwfcalc.training.transfer import TransferConfig, TransferTrainer, predict_observables


@pytest.fixture(scope="module")
def mp2_db(tmp_path_factory):
    """12 distorted waters labelled with MP2/6-31g (energies, analytic forces, finite-field dipoles)."""
    directory = tmp_path_factory.mktemp("mp2")
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(12):
        atoms = molecule("H2O")
        atoms.positions += 0.05 * rng.standard_normal(atoms.positions.shape)
        frames.append(atoms)
    write(directory / "water.xyz", frames)
    assert main(["label", str(directory / "water.xyz"), "-o", str(directory / "mp2.db"), "--method", "mp2",
                 "--basis", "6-31g", "--workers", "1", "-q"]) == 0
    return directory / "mp2.db"


def test_transfer_forces_are_minus_the_gradient_of_the_wavefunction_energy():
    """E = E_nn + 1/2 tr[P(H_core + F)] + head: the autograd forces through P, S(R), H_core(R) and the network."""
    start = read_model("water-pbe-def2svp", dtype=torch.float64)[0]
    torch.manual_seed(0)
    width = start.network.invariant_width("invariants")
    head = EnergyHead(EnergyConfig(term="half-core", features="invariants", elements=[1, 8], num_scalars=width,
                                   hidden=[8]))
    model = HamiltonianPredictor(MLWFModel(start.network, start.theory, head), torch.device("cpu"))
    atoms = molecule("H2O")
    atoms.positions[1] += (0.03, -0.02, 0.04)

    def sample(positions):
        return Sample(numbers=torch.as_tensor(atoms.numbers), positions=torch.as_tensor(positions / Bohr),
                      fock=None, energy=torch.zeros(()), forces=torch.zeros(3, 3), dipole=torch.zeros(3), key="")

    forces = predict_observables(model, [sample(atoms.positions)], create_graph=False).forces
    step = 1e-4  # Angstrom
    for atom, axis in [(0, 2), (1, 0), (2, 1)]:
        plus, minus = atoms.positions.copy(), atoms.positions.copy()
        plus[atom, axis] += step
        minus[atom, axis] -= step
        energies = [float(predict_observables(model, [sample(p)], create_graph=False).energy[0]) for p in (plus, minus)]
        numeric = -(energies[0] - energies[1]) / (2 * step / Bohr)
        assert float(forces[atom, axis]) == pytest.approx(numeric, abs=2e-6)


def _config(db, output, **changes):
    settings = dict(high_level=str(db), init_from="water-pbe-def2svp", output=str(output), n_train=4, n_val=8,
                    batch_size=4, max_steps=16, val_every=4, warmup_steps=2, lr=1e-4, threads=1, head_epochs=30)
    return TransferConfig(**{**settings, **changes})


def test_fine_tuning_lowers_the_loss_below_the_head_only_fit_and_resumes_exactly(mp2_db, tmp_path):
    trainer = TransferTrainer(_config(mp2_db, tmp_path / "whole"), progress=False)
    # the same 4 molecules every step: stage 1 left the head at its optimum for the frozen network, so
    # what stage 2 gains comes from training the network through the wavefunction
    losses = [trainer.train_step()["loss"] for _ in range(16)]
    assert np.mean(losses[-3:]) < 0.95 * losses[0], losses
    trainer = TransferTrainer(_config(mp2_db, tmp_path / "run"), progress=False)
    trainer.run()
    assert trainer.history[0]["step"] == 0  # the head-only model, logged as the baseline
    assert (tmp_path / "run" / "last" / "model.safetensors").exists()  # the end of the schedule
    assert 0 < trainer.history[-1]["val_fock_shift_rms_uha"] < 1e4  # F moved, and stays a Hamiltonian

    first = TransferTrainer(_config(mp2_db, tmp_path / "split"), progress=False)
    first.run(stop_at_step=8)
    resumed = TransferTrainer(_config(mp2_db, tmp_path / "split"), progress=False)
    assert resumed.step == 8
    resumed.run()
    for a, b in zip(trainer.model.model.parameters(), resumed.model.model.parameters()):  # same run, split
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)

    # the exported model is a calculator with every accessor; its record says what its energy follows
    model = mlwfcalc.load_model(tmp_path / "run" / "best")
    assert model.model.record["transfer"]["high_level"] == "MP2/6-31g"
    assert model.energy_head.config.term == "half-core"
    atoms = molecule("H2O")
    atoms.calc = mlwfcalc.MLWFCalculator(model)
    assert np.isfinite(atoms.get_potential_energy()) and atoms.get_forces().shape == (3, 3)
    assert atoms.calc.get_density_matrix().shape == (24, 24)


def test_transfer_command_line_refusals(mp2_db, tmp_path, capsys):
    assert main(["train", "--transfer", str(mp2_db), "-o", str(tmp_path / "r"), "-q"]) == 2
    assert "--init-from" in capsys.readouterr().err
    assert main(["train", str(mp2_db), "--transfer", str(mp2_db), "--init-from", "water-pbe-def2svp",
                 "-o", str(tmp_path / "r"), "-q"]) == 2
    assert "drop the DATASET" in capsys.readouterr().err
    assert LabelledDataset(mp2_db, kohn_sham=False).settings.name == "MP2/6-31g"


def test_transfer_command_fits_an_uncertainty_on_the_high_level_force_errors(mp2_db, water_db, tmp_path):
    """The fine-tuned energy follows MP2, so the uncertainty is calibrated on MP2 force errors of its own
    validation split, and reported in eV/A by the calculator; fit-domain redoes it from the record. On
    Kohn-Sham labels the model is scored on F, orbitals and dipole only (its energies are MP2's)."""
    run = tmp_path / "cli"
    assert main(["train", "--transfer", str(mp2_db), "--init-from", "water-pbe-def2svp", "-o", str(run),
                 "--max-steps", "2", "--val-every", "2", "--n-train", "4", "--n-val", "8", "--batch-size", "4",
                 "--threads", "1", "-q"]) == 0
    model = mlwfcalc.load_model(run / "best")
    config = model.uncertainty.config
    assert config.quantity == "forces" and config.calibration["n_structures"] == 8
    assert model.domain is not None and 0 < model.uncertainty_threshold < 0.1  # Hartree/Bohr
    equilibrium, stretched = molecule("H2O"), molecule("H2O")
    stretched.positions[1] *= 1.08
    values = []
    for atoms in (equilibrium, stretched):
        atoms.calc = mlwfcalc.MLWFCalculator(model, domain="warn")
        atoms.get_potential_energy()
        assert atoms.calc.results["uncertainty_unit"] == "eV/A"
        values.append(atoms.calc.results["uncertainty"])
    assert values[0] < values[1]
    _fallback_is_the_high_level(model, stretched, tmp_path / "fallback.db")
    assert main(["fit-domain", str(run / "best"), str(mp2_db), "-q"]) == 0
    assert mlwfcalc.load_model(run / "best").uncertainty.config.calibration["n_structures"] == 8
    report = evaluate(model, LabelledDataset(water_db), progress=False)
    assert report.energy_mae_mev is None and report.mean_uncertainty_uha is None
    assert 0 < report.fock_mae_uha < 1e4 and report.orbital_cosine_percent > 99


def _fallback_is_the_high_level(model, atoms, database):
    """on_uncertain="scf" with a transfer model: the step is computed at its high level (MP2 here), not PBE,
    and its label goes into the fallback database at that level."""
    from pyscf import gto, mp, scf

    from mlwfcalc.data.database import LabelDatabase

    model.uncertainty.config.hard_limit_factor = 1e-9  # every structure is past the hard limit
    atoms = atoms.copy()
    atoms.calc = mlwfcalc.MLWFCalculator(model, domain="warn", on_uncertain="scf", fallback_database=database)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        energy = atoms.get_potential_energy()
    assert atoms.calc.results["scf_fallback"] and atoms.calc.scf_fallback_calls == 1
    mol = gto.M(atom=[(s, p) for s, p in zip(atoms.get_chemical_symbols(), atoms.positions)], basis="6-31g",
                verbose=0)
    reference = mp.MP2(scf.RHF(mol).run(conv_tol=1e-10)).run().e_tot
    assert energy == pytest.approx(reference * Hartree, abs=1e-4)  # eV
    assert LabelDatabase(database).settings.name == "MP2/6-31g"
