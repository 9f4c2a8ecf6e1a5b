"""Training the functional route end to end (issue 43): the weight gradient of the loss on the route's energy and
directional force is the exact gradient of that loss (central differences in the weights), a run trains,
checkpoints, resumes and exports a model the calculator runs in that route, and bad settings are refused."""

import json
import warnings

import numpy as np
import pytest
import torch

from mlwfcalc import InputError, MLWFCalculator
from mlwfcalc.cli import main
from mlwfcalc.io import read_model
from mlwfcalc.training.functional_fit import FunctionalFitConfig, FunctionalTrainer


def _trainer(tmp_path, db, init_from, **settings):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = FunctionalFitConfig(dataset=str(db), init_from=str(init_from), output=str(tmp_path / "run"),
                                     n_train=6, n_val=2, **settings)
        return FunctionalTrainer(config, progress=False)


@pytest.mark.parametrize("route", ["harris", "variational"])
def test_weight_gradient_is_the_gradient_of_the_loss(tmp_path, water_db, tiny_model_dir, route):
    trainer = _trainer(tmp_path, water_db, tiny_model_dir, route=route, batch_size=1, force_weight=1.0, approximate_kernel=False,
                       fock_weight=1e-6)
    model, frame = trainer.model, int(trainer.train_index[0])
    parameters = [p for p in model.model.network.parameters() if p.requires_grad]
    model.model.zero_grad()
    terms = trainer.frame_terms(model, frame, step=0, train=True)
    assert abs(terms.force) > 10  # meV/A: a random model's forces are far off, so the force term counts
    generator = torch.Generator().manual_seed(1)
    direction = [torch.randn(p.shape, generator=generator, dtype=p.dtype) for p in parameters]
    analytic = sum(float((p.grad * d).sum()) for p, d in zip(parameters, direction) if p.grad is not None)
    step, losses = 1e-5, []
    for sign in (1, -1):
        with torch.no_grad():
            for p, d in zip(parameters, direction):
                p.add_(sign * step * d)
        losses.append(trainer.weighted([trainer.frame_terms(model, frame, step=0, train=False)]))
        with torch.no_grad():
            for p, d in zip(parameters, direction):
                p.sub_(sign * step * d)
    numeric = (losses[0] - losses[1]) / (2 * step)
    assert analytic == pytest.approx(numeric, rel=2e-3)


def test_directional_force_is_the_routes_force(tmp_path, water_db):
    """u . F from the energy difference along u equals u . F of the route's exact forces."""
    from ase import Atoms
    from ase.units import Bohr, Hartree

    from mlwfcalc.functional import functional_energy

    trainer = _trainer(tmp_path, water_db, "water-pbe-def2svp")
    frame = int(trainer.val_index[0])
    sample = trainer.dataset[frame]
    terms = trainer.frame_terms(trainer.model, frame, step=-1, train=False)
    u = trainer._direction(sample, frame, -1)
    atoms = Atoms(sample.numbers.numpy(), positions=sample.positions.numpy() * Bohr)
    exact = functional_energy(trainer.model, atoms, "harris", forces="exact")
    error = float(((exact.forces - sample.forces.numpy()) * u).sum()) * 1000 * Hartree / Bohr
    assert terms.force == pytest.approx(error, abs=0.05)  # meV/A
    assert terms.energy == pytest.approx((exact.energy - float(sample.energy)) * 1000 * Hartree / len(atoms), abs=0.01)  # h^2/2 curvature


def test_run_trains_resumes_and_exports(tmp_path, water_db):
    output = tmp_path / "run"
    flags = ["train", str(water_db), "--functional", "harris", "--init-from", "water-pbe-def2svp", "-o", str(output),
             "--n-train", "3", "--n-val", "5", "--batch-size", "2", "--max-steps", "4", "--val-every", "2",
             "--lr", "1e-4", "-q"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(flags + ["--stop-at-step", "2"]) == 0
        assert json.loads((output / "checkpoint.json").read_text())["step"] == 2
        assert main(flags) == 0  # resumes at step 2
    log = (output / "log.csv").read_text().splitlines()
    assert len(log) == 1 + 3  # header; steps 0, 2, 4
    model, _ = read_model(output / "last")
    assert model.energy_head is None and model.uncertainty is not None  # the domain and uncertainty fitted again
    assert model.record["functional_fit"]["route"] == "harris"
    assert model.record["functional_fit"]["step"] == 4
    calc = MLWFCalculator(output / "last", mode="harris", dtype=torch.float64)
    from ase.build import molecule

    atoms = molecule("H2O")
    atoms.calc = calc
    assert np.isfinite(atoms.get_forces()).all()


def test_bad_settings_are_refused(tmp_path, water_db):
    with pytest.raises(InputError, match="route"):
        FunctionalFitConfig(route="band")
    with pytest.raises(InputError, match="float64"):
        FunctionalFitConfig(dtype="float32")
    with pytest.raises(InputError, match="no frame"):
        names = tmp_path / "names.json"
        names.write_text(json.dumps(["CCO"]))
        _trainer(tmp_path, water_db, "water-pbe-def2svp", validation_molecules=str(names))
    with pytest.raises(InputError, match="transfer model"):
        _trainer(tmp_path, water_db, "water-ccsdt")
    assert main(["train", str(water_db), "--functional", "harris", "--transfer", str(water_db),
                 "--init-from", "water-pbe-def2svp", "-o", str(tmp_path / "x")]) != 0
