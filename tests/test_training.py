"""Training: overfitting a few waters, exact resume, model files, predict, evaluate."""

import json

import numpy as np
import pytest
import torch
from ase.build import molecule
from safetensors.torch import load_file, save_file

import mlwfcalc
from mlwfcalc.data import LabelledDataset
from mlwfcalc.nn import ModelConfig
from mlwfcalc.training import TrainConfig, Trainer
from mlwfcalc.training.evaluation import evaluate
from mlwfcalc.validation import InputError

TINY_MODEL = dict(channels=4, num_layers=1, num_radial=4, radial_hidden=8)


def _config(db, out, **kw):
    base = dict(dataset=str(db), output=str(out), model=ModelConfig(**TINY_MODEL), n_train=4, n_val=4,
                batch_size=4, max_steps=30, val_every=10, warmup_steps=5, lr=1e-2, threads=2)
    return TrainConfig(**{**base, **kw})


def test_tiny_model_overfits_four_waters(water_db, tmp_path):
    trainer = Trainer(_config(water_db, tmp_path / "run", max_steps=300, val_every=300, lr_min=1e-4), progress=False)
    first = trainer.train_step()[0]
    trainer.run(stop_at_step=290)
    last = np.mean([trainer.train_step()[0] for _ in range(10)])  # the final steps on the same 4 molecules
    assert last < first / 100, (first, last)
    trainer.run()
    assert (tmp_path / "run" / "learning_curve.png").stat().st_size > 1000
    assert (tmp_path / "run" / "log.csv").read_text().startswith("step,")


def test_killed_and_resumed_run_gives_identical_weights(water_db, tmp_path):
    straight = Trainer(_config(water_db, tmp_path / "a"), progress=False)
    straight.run()
    first = Trainer(_config(water_db, tmp_path / "b"), progress=False)
    first.run(stop_at_step=20)
    del first
    resumed = Trainer(_config(water_db, tmp_path / "b"), progress=False)
    assert resumed.step == 20
    resumed.run()
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    for key, value in straight.optimizer.state_dict()["state"][0].items():
        assert torch.equal(torch.as_tensor(value), torch.as_tensor(resumed.optimizer.state_dict()["state"][0][key]))
    with pytest.raises(InputError, match="resume with the same settings"):
        Trainer(_config(water_db, tmp_path / "b", seed=5), progress=False)

    # labels that changed under a run (background labelling) would move molecules between the splits:
    # resuming on them is refused, and so is rebuilding the finished model's split for its domain
    import shutil

    from ase.db import connect

    from mlwfcalc.cli import main

    labels = tmp_path / "labels.db"
    shutil.copy(water_db, labels)
    Trainer(_config(labels, tmp_path / "c"), progress=False).run(stop_at_step=10)
    with connect(labels) as db:
        db.delete([next(db.select()).id])
    with pytest.raises(InputError, match="changed since the run"):
        Trainer(_config(labels, tmp_path / "c"), progress=False)
    assert main(["fit-domain", str(tmp_path / "c" / "best"), str(labels), "-q"]) == 2
    assert main(["fit-domain", str(tmp_path / "c" / "best"), str(labels), "--n-train", "3", "--n-val", "3",
                 "-q"]) == 0  # a split chosen explicitly


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch")
def test_training_on_cuda_follows_cpu_and_resumes_on_the_cpu(water_db, tmp_path):
    cpu = Trainer(_config(water_db, tmp_path / "cpu", max_steps=20), progress=False)
    cpu.run()
    gpu = Trainer(_config(water_db, tmp_path / "gpu", max_steps=20, device="cuda"), progress=False)
    assert next(gpu.model.parameters()).is_cuda
    gpu.run(stop_at_step=10)
    resumed = Trainer(_config(water_db, tmp_path / "gpu", max_steps=20), progress=False)  # device-free checkpoint
    assert resumed.step == 10
    resumed.run()
    assert resumed.validate() == pytest.approx(cpu.validate(), rel=0.05)


@pytest.fixture(scope="module")
def trained_model(water_db, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained")
    trainer = Trainer(_config(water_db, out, max_steps=20, n_train=6, n_val=2), progress=False)
    trainer.run()
    return out / "best"


def test_predict_gives_consistent_orbitals_and_density(trained_model):
    model = mlwfcalc.load_model(trained_model, device="cpu")
    atoms = molecule("H2O")
    result = model.predict(atoms)
    assert result.fock.shape == result.overlap.shape == result.density_matrix.shape == (24, 24)
    assert result.mol.nao == 24 and result.mol.basis == "def2-svp"
    assert result.mo_occ.sum() == 10 and np.all(np.diff(result.mo_energy) >= 0)
    assert abs(np.trace(result.density_matrix @ result.overlap) - 10) < 1e-8
    c = result.mo_coeff
    assert np.allclose(c.T @ result.overlap @ c, np.eye(c.shape[1]), atol=1e-8)
    assert np.allclose(result.fock @ c, result.overlap @ c * result.mo_energy, atol=1e-6)
    with pytest.raises(InputError, match="element.*C.*not supported"):
        model.predict(molecule("CH4"))


def test_evaluate_reports_the_same_fock_error_as_predict(trained_model, water_db):
    model = mlwfcalc.load_model(trained_model, device="cpu")
    dataset = LabelledDataset(water_db)
    report = evaluate(model, dataset, progress=False)
    from ase import Atoms
    from ase.units import Bohr
    errors = [np.abs(model.predict(Atoms(s.numbers.numpy(), positions=s.positions.numpy() * Bohr)).fock
                     - s.fock.numpy()).mean() for s in dataset]
    assert report.fock_mae_uha == pytest.approx(1e6 * np.mean(errors), rel=1e-4)
    assert 0 < report.orbital_cosine_percent <= 100 and report.orbital_energy_mae_uha > 0
    assert 0 < report.dipole_mae_debye < 5  # water's dipole is about 2 D; a 20-step model is rough but not absurd


def _copy_model(src, dst):
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_bad_model_files_are_refused_clearly(trained_model, tmp_path):
    missing = _copy_model(trained_model, tmp_path / "missing")
    tensors = load_file(str(missing / "model.safetensors"))
    tensors.pop(sorted(tensors)[0])
    save_file(tensors, str(missing / "model.safetensors"))
    with pytest.raises(InputError, match="missing tensors"):
        mlwfcalc.load_model(missing, device="cpu")

    corrupt = _copy_model(trained_model, tmp_path / "corrupt")
    (corrupt / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(InputError, match="corrupt"):
        mlwfcalc.load_model(corrupt, device="cpu")

    old = _copy_model(trained_model, tmp_path / "old")
    config = json.loads((old / "config.json").read_text())
    config["format_version"] = 99
    (old / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="format version 99"):
        mlwfcalc.load_model(old, device="cpu")

    with pytest.raises(InputError, match="no model at"):
        mlwfcalc.load_model(tmp_path / "nowhere", device="cpu")


def test_train_evaluate_predict_from_the_command_line(water_db, tmp_path, capsys):
    from mlwfcalc.cli import main

    config = tmp_path / "train.toml"
    config.write_text(f'dataset = "{water_db}"\noutput = "{tmp_path / "run"}"\nn_train = 6\nn_val = 2\n'
                      'batch_size = 3\nmax_steps = 6\nval_every = 3\nwarmup_steps = 2\nthreads = 2\n\n'
                      '[model]\nchannels = 4\nnum_layers = 1\nnum_radial = 4\nradial_hidden = 8\n')
    assert main(["train", "--config", str(config), "--max-steps", "4", "--stop-at-step", "2", "-q"]) == 0
    assert "step 2:" in capsys.readouterr().out
    assert main(["train", "--config", str(config), "--max-steps", "4", "-q"]) == 0  # resumes at step 2
    out = capsys.readouterr().out
    assert "6 frames train / 2 frames validation" in out and "starting at step 2" in out and "step 4:" in out
    saved = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert saved["step"] == 4 and saved["config"]["max_steps"] == 4 and saved["config"]["model"]["channels"] == 4

    report, plot = tmp_path / "eval.json", tmp_path / "parity.png"
    assert main(["evaluate", str(tmp_path / "run" / "best"), str(water_db), "--json", str(report),
                 "--plot", str(plot), "--device", "cpu", "-q"]) == 0
    metrics = json.loads(report.read_text())
    assert metrics["n_molecules"] == 8 and metrics["fock_mae_uha"] > 0 and plot.stat().st_size > 1000
    assert "MAE of F, all matrix elements" in capsys.readouterr().out

    assert main(["predict", "H2O", "--model", str(tmp_path / "run" / "best"), "--device", "cpu"]) == 0
    assert "gap" in capsys.readouterr().out
    assert main(["train", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read training config" in capsys.readouterr().err


def test_orbital_energy_loss_trains_and_init_from_starts_from_a_model(water_db, trained_model, tmp_path):
    trainer = Trainer(_config(water_db, tmp_path / "orb", max_steps=12, n_train=6, n_val=2, orbital_loss_weight=1.0,
                              init_from=str(trained_model)), progress=False)
    source = mlwfcalc.load_model(trained_model, device="cpu").network.state_dict()
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, source[key].to(value.dtype)), key
    indices = trainer.data.step_indices(0)
    batch, _ = trainer.data.batch(indices)
    with torch.no_grad():
        before = trainer.data.orbital_energy_error(indices, trainer.model(batch.to(dtype=torch.float32)))
    losses = [trainer.train_step()[0] for _ in range(12)]
    assert all(np.isfinite(losses))
    with torch.no_grad():
        after = trainer.data.orbital_energy_error(indices, trainer.model(batch.to(dtype=torch.float32)))
    assert before[1] == after[1] == 4 * 6  # 5 occupied + LUMO, 4 molecules in a batch
    assert float(after[0]) < float(before[0])
    with pytest.raises(InputError, match="differs from this run"):
        Trainer(_config(water_db, tmp_path / "bad", init_from=str(trained_model),
                        model=ModelConfig(**{**TINY_MODEL, "channels": 8})), progress=False)


def test_density_loss_is_the_first_order_density_error_and_trains(water_db, trained_model, tmp_path):
    from mlwfcalc.electronic import solve_orbitals

    trainer = Trainer(_config(water_db, tmp_path / "dens", max_steps=12, n_train=6, n_val=2, density_loss_weight=1.0,
                              init_from=str(trained_model)), progress=False)
    data = trainer.data
    i = int(data.train_index[0])
    sample = data.dataset[i]
    inverse = data.orthogonaliser[i]
    cholesky = torch.linalg.inv(inverse)  # L, with S = L L^T and X = L^-1
    overlap = cholesky @ cholesky.T
    exact, _ = data.density_error([i], sample.fock[None])
    assert float(exact) < 1e-10
    noise = torch.as_tensor(np.random.default_rng(0).standard_normal(sample.fock.shape))
    for size in (1e-3, 1e-4):  # the error of the first order shrinks as size^2: ratios -> 1
        perturbed = sample.fock + size * (noise + noise.T)
        first_order, count = data.density_error([i], perturbed[None])
        change = (solve_orbitals(perturbed, overlap, 10).density_matrix()
                  - solve_orbitals(sample.fock, overlap, 10).density_matrix())
        true = torch.linalg.norm(cholesky.T @ change @ cholesky)  # the orthonormal-basis density is L^T P L
        assert count == 1 and abs(float(first_order) / float(true) - 1) < 50 * size, (size, first_order, true)
    indices = data.step_indices(0)
    batch, _ = data.batch(indices)
    with torch.no_grad():
        before = data.density_error(indices, trainer.model(batch.to(dtype=torch.float32)))[0]
    losses = [trainer.train_step()[0] for _ in range(12)]
    with torch.no_grad():
        after = data.density_error(indices, trainer.model(batch.to(dtype=torch.float32)))[0]
    assert all(np.isfinite(losses)) and float(after) < float(before)


def test_basis_named_in_the_config_is_checked_against_the_dataset(water_db, tmp_path, capsys):
    from mlwfcalc.cli import main

    config = tmp_path / "train.toml"
    config.write_text(f'dataset = "{water_db}"\noutput = "{tmp_path / "run"}"\nmax_steps = 1\n\n'
                      '[model]\nbasis = "def2-tzvp"\nchannels = 4\nnum_layers = 1\n')
    assert main(["train", "--config", str(config), "-q"]) == 2
    error = capsys.readouterr().err
    assert "is in basis def2-svp, the model config says def2-tzvp" in error, error


def test_evaluate_is_rotation_invariant_and_tabulates_several_sets(water_db, tmp_path, capsys):
    """Randomly rotated molecules (references turned with them) give the same rotation-invariant errors, and
    element-wise MAEs (F, force components: not invariant) within a few percent; several sets give one
    column each, a JSON per set and an error-against-temperature plot; --scf adds the SCF warm start (fewer
    cycles than minao, the same converged energy)."""
    from mlwfcalc.cli import main

    model = mlwfcalc.load_model("water-pbe-def2svp", device="cpu", dtype=torch.float64)
    dataset = LabelledDataset(water_db)
    plain = evaluate(model, dataset, progress=False)
    turned = evaluate(model, dataset, progress=False, rotation_seed=3)
    for name in ("orbital_energy_mae_uha", "homo_lumo_gap_mae_uha", "dipole_mae_debye", "energy_mae_mev",
                 "mean_uncertainty_uha"):
        assert getattr(turned, name) == pytest.approx(getattr(plain, name), rel=1e-6), name
    for name in ("fock_mae_uha", "force_mae_mev_per_a"):
        assert getattr(turned, name) == pytest.approx(getattr(plain, name), rel=0.05), name
    assert plain.outside_domain_percent == 0 and plain.energy_mae_mev < 5
    report, trend = tmp_path / "eval.json", tmp_path / "trend.png"
    assert main(["evaluate", "water-pbe-def2svp", f"300={water_db}", f"500={water_db}", "--json", str(report),
                 "--plot", str(tmp_path / "parity.png"), "--trend", str(trend), "--scf", "2", "-q"]) == 0
    sets = json.loads(report.read_text())["sets"]
    assert set(sets) == {"300", "500"} and sets["300"]["n_molecules"] == 8 and trend.stat().st_size > 1000
    out = capsys.readouterr().out
    assert "| energy head: force MAE (per component) |" in out and "| SCF cycles from the model's density" in out
    scf = sets["300"]
    assert scf["scf_molecules"] == 2 and scf["scf_unconverged"] == 0 and scf["scf_worse_than_minao"] in (0, 1, 2)
    assert scf["scf_cycle_ratio"] == pytest.approx(scf["scf_cycles_model"] / scf["scf_cycles_minao"])
    assert scf["scf_cycle_ratio"] < 0.8 and scf["scf_max_energy_difference_hartree"] < 1e-8
    assert main(["evaluate", "water-pbe-def2svp", str(water_db), "--group-by", "size", "--json", str(report),
                 "--plot", str(tmp_path / "parity.png"), "-q"]) == 0
    assert json.loads(report.read_text())["n_molecules"] == 8 and "1 heavy atom" in capsys.readouterr().out
    assert main(["evaluate", "water-pbe-def2svp", str(water_db), "--group-by", "family", "-q"]) == 2
    assert "group by size instead" in capsys.readouterr().err


def test_two_ddp_processes_follow_one_process_with_the_same_total_batch(water_db, tmp_path, capfd):
    """torch DDP over gloo, 2 CPU processes with 2 molecules each against 1 process with 4: same weights."""
    from mlwfcalc.training.distributed import Context, launch, shard
    from mlwfcalc.training.trainer import train_process

    assert shard(np.arange(4), Context(0, 2)).tolist() == [0, 2] and shard(np.arange(4), Context(1, 2)).tolist() == [1, 3]

    single = _config(water_db, tmp_path / "one", max_steps=6, val_every=6, dtype="float64", threads=1)
    Trainer(single, progress=False).run()
    double = _config(water_db, tmp_path / "two", max_steps=6, val_every=6, dtype="float64", threads=1)
    launch(train_process, 2, double.to_dict(), False, None)
    assert "2 processes: step 6" in capfd.readouterr().out
    one = load_file(str(tmp_path / "one" / "best" / "model.safetensors"))
    two = load_file(str(tmp_path / "two" / "best" / "model.safetensors"))
    assert one.keys() == two.keys()
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-9, atol=1e-11)
