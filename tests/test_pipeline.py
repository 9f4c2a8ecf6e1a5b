"""`mlwfcalc sample` then `mlwfcalc label`, end to end: resume after SIGKILL, failures, the loader."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from ase.io import read
from ase.units import Bohr

from mlwfcalc.cli import main
from mlwfcalc.data import LabelDatabase, LabelledDataset, split_indices
from mlwfcalc.theory import LevelOfTheory
from mlwfcalc.data.labelling import label_frames, read_frames
from mlwfcalc.validation import InputError

TINY = ["--grid-level", "1", "--conv-tol", "1e-8"]


def _rows(db_path) -> int:
    if not os.path.exists(db_path):
        return 0
    try:
        with sqlite3.connect(db_path, timeout=5) as con:
            return con.execute("select count(*) from systems").fetchone()[0]
    except sqlite3.OperationalError:  # table not created yet
        return 0


@pytest.fixture(scope="module")
def frames_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sample") / "water.extxyz"
    assert main(["sample", "H2O", "-o", str(path), "--frames", "8", "--interval", "5",
                 "--equilibration", "20", "--seed", "3", "-q"]) == 0
    return path


def test_sample_writes_distinct_md_frames(frames_file):
    frames = read(frames_file, index=":")
    assert len(frames) == 8
    assert all(f.get_chemical_formula() == "H2O" for f in frames)
    steps = [f.info["md_step"] for f in frames]
    assert steps == [20 + 5 * (i + 1) for i in range(8)]
    assert np.abs(frames[0].positions - frames[-1].positions).max() > 1e-3
    assert main(["sample", "H2O", "-o", str(frames_file)]) == 2  # refuses to overwrite existing frames
    assert len(read(frames_file, index=":")) == 8


def test_frames_can_be_picked_with_ase_slices(frames_file):
    every = read_frames([frames_file])
    first = read_frames([f"{frames_file}@:3"])
    assert len(first) == 3 and [f.key for f in first] == [f.key for f in every[:3]]
    assert [f.key for f in read_frames([f"{frames_file}@5"])] == [every[5].key]
    with pytest.raises(InputError, match="ASE slice such as"):
        read_frames([f"{frames_file}@first"])


def test_a_dask_worker_killed_mid_run_loses_no_geometry_and_duplicates_none(frames_file, tmp_path):
    """Labelling on a running Dask cluster (as with --scheduler): SIGKILL a worker while it runs a geometry;
    Dask reschedules it, and the database still gets each of the 8 geometries exactly once."""
    import threading

    from distributed import Client, LocalCluster

    db = tmp_path / "labels.db"
    killed = {}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=50) as cluster, Client(cluster, set_as_default=False) as client:
        def kill_a_busy_worker():
            deadline = time.time() + 120
            while time.time() < deadline:
                busy = [address for address, tasks in client.processing().items() if tasks]
                if busy:
                    pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
                    killed["rows_before"] = _rows(db)
                    os.kill(pid, signal.SIGKILL)
                    killed["pid"] = pid
                    return
                time.sleep(0.02)

        killer = threading.Thread(target=kill_a_busy_worker)
        killer.start()
        summary = label_frames(read_frames([frames_file]), db, LevelOfTheory(), scheduler=cluster.scheduler_address,
                               progress=False)
        killer.join()
    assert "pid" in killed and killed["rows_before"] < 8, "the kill must land while geometries are in flight"
    assert (summary.done, summary.failed, summary.skipped) == (8, 0, 0)
    database = LabelDatabase(db)
    assert database.count() == 8 and database.count("ok") == 8 and len(database.keys()) == 8


def test_an_unreachable_scheduler_is_a_clear_error(frames_file, tmp_path, capsys):
    assert main(["label", str(frames_file), "-o", str(tmp_path / "x.db"), "--scheduler", "tcp://127.0.0.1:9",
                 "-q"]) == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in capsys.readouterr().err
    assert not (tmp_path / "x.db").exists() or _rows(tmp_path / "x.db") == 0


def test_label_killed_halfway_resumes_to_exactly_eight_rows(frames_file, tmp_path):
    db = tmp_path / "labels.db"
    cmd = [sys.executable, "-m", "mlwfcalc.cli", "label", str(frames_file), "-o", str(db), "--workers", "1",
           "-q", *TINY]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 180
    while _rows(db) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _rows(db)
    assert 0 < killed_at < 8, f"kill came at {killed_at} rows; the test needs a run killed halfway"

    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"labelled {8 - killed_at}, failed 0, already in the database {killed_at}" in result.stdout
    database = LabelDatabase(db)
    assert database.count() == 8 and database.count("ok") == 8
    assert len(database.keys()) == 8

    dataset = LabelledDataset(db)
    assert len(dataset) == 8 and dataset.elements == [1, 8]
    frames = read(frames_file, index=":")
    first = dataset[0]
    assert torch.allclose(first.positions, torch.as_tensor(frames[0].positions / Bohr))  # (source, frame) order
    assert first.fock.shape == (24, 24) and torch.allclose(first.fock, first.fock.T, atol=1e-10)
    assert -76.5 < float(first.energy) < -76.0  # Hartree: PBE/def2-SVP water
    assert first.forces.shape == (3, 3) and torch.abs(first.forces.sum(0)).max() < 1e-3  # Hartree/Bohr, no net force

    # a different setting on the same file is refused rather than mixed in
    bad = subprocess.run([*cmd[:-4], "--grid-level", "2", "--conv-tol", "1e-8"], capture_output=True, text=True)
    assert bad.returncode == 2 and "other settings" in bad.stderr and "grid_level: 1 there, 2 now" in bad.stderr


def test_a_model_guess_gives_the_same_labels_in_fewer_cycles(frames_file, tmp_path, capsys):
    from ase import Atoms
    from ase.io import write

    frames = read(frames_file, index=":3") + [Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])]
    path = tmp_path / "frames.extxyz"
    write(path, frames)
    settings = ["--grid-level", "1", "--conv-tol", "1e-10", "--workers", "1", "-q"]
    assert main(["label", str(path), "-o", str(tmp_path / "minao.db"), *settings]) == 0
    assert main(["label", str(path), "-o", str(tmp_path / "model.db"), "--guess", "water-pbe-def2svp", *settings]) == 0
    minao, model = (LabelDatabase(tmp_path / f"{name}.db").rows() for name in ("minao", "model"))
    assert [r.guess for r in minao] == ["minao"] * 4
    assert [r.guess for r in model] == ["model water-pbe-def2svp"] * 3 + ["minao"]  # H2: outside the water domain
    for a, b in zip(minao, model):
        assert abs(a.energy - b.energy) < 1e-8 * 27.2  # eV
        assert np.abs(a.data["fock"] - b.data["fock"]).max() < 1e-5  # Hartree
        assert np.abs(a.forces - b.forces).max() < 1e-4  # eV/A
    assert sum(r.cycles for r in model[:3]) < sum(r.cycles for r in minao[:3])

    capsys.readouterr()
    assert main(["label", str(path), "-o", str(tmp_path / "svp.db"), "--guess", "water-pbe-def2svp", "--basis",
                 "sto-3g"]) == 2
    assert "predicts PBE/def2-svp but the labels are PBE/sto-3g" in capsys.readouterr().err
    assert main(["label", str(path), "-o", str(tmp_path / "mp2.db"), "--guess", "water-pbe-def2svp", "--method",
                 "mp2"]) == 2
    assert "drop --guess" in capsys.readouterr().err
    assert not (tmp_path / "svp.db").exists() and not (tmp_path / "mp2.db").exists()


def test_ri_j_forces_keep_the_labels_and_stay_within_a_few_mev_per_angstrom(frames_file, tmp_path, capsys):
    """``--gradient ri-j`` fits only the gradient's Coulomb term: energy, F and dipole are the exact
    labels; the forces stay close to the exact ones; the setting is recorded and never mixed."""
    settings = ["--grid-level", "1", "--conv-tol", "1e-10", "--workers", "1", "-q"]
    frames = f"{frames_file}@:2"
    assert main(["label", frames, "-o", str(tmp_path / "exact.db"), *settings]) == 0
    assert main(["label", frames, "-o", str(tmp_path / "rij.db"), "--gradient", "ri-j", *settings]) == 0
    exact, rij = LabelDatabase(tmp_path / "exact.db"), LabelDatabase(tmp_path / "rij.db")
    assert (exact.settings.gradient, rij.settings.gradient) == ("exact", "ri-j")
    for a, b in zip(exact.rows(), rij.rows()):
        assert a.geometry_key == b.geometry_key and a.energy == b.energy
        assert np.array_equal(a.data["fock"], b.data["fock"]) and np.array_equal(a.data["dipole"], b.data["dipole"])
        difference = np.abs(a.forces - b.forces)  # eV/A
        assert 0 < difference.max() < 0.01, difference.max()
    capsys.readouterr()
    assert main(["label", f"{frames_file}@2:3", "-o", str(tmp_path / "rij.db"), *settings]) == 2  # exact into ri-j
    assert "gradient: ri-j there, exact now" in capsys.readouterr().err
    assert main(["label", frames, "-o", str(tmp_path / "mp2.db"), "--method", "mp2", "--gradient", "ri-j"]) == 2
    assert "drop --gradient" in capsys.readouterr().err


def test_databases_written_before_the_gradient_setting_read_as_exact(tmp_path):
    from mlwfcalc.theory import LEGACY_DEFAULTS, SETTINGS_KEYS

    old = {k: v for k, v in vars(LevelOfTheory()).items() if k not in LEGACY_DEFAULTS}
    assert set(old) == set(SETTINGS_KEYS) - set(LEGACY_DEFAULTS)
    assert LevelOfTheory.from_metadata(old) == LevelOfTheory(gradient="exact")
    with pytest.raises(InputError, match="without basis"):  # only the legacy keys have defaults
        LevelOfTheory.from_metadata({k: v for k, v in old.items() if k != "basis"})
    db = LabelDatabase(tmp_path / "old.db", LevelOfTheory())
    db._db.metadata = old  # as `mlwfcalc label` wrote it before 2026-12-03
    assert LabelDatabase(tmp_path / "old.db", LevelOfTheory()).settings.gradient == "exact"
    with pytest.raises(InputError, match="gradient: exact there, ri-j now"):
        LabelDatabase(tmp_path / "old.db", LevelOfTheory(gradient="ri-j"))


def test_unconverged_geometry_is_recorded_as_failed_and_never_loaded(frames_file, tmp_path):
    db = tmp_path / "failed.db"
    frames = read_frames([frames_file])[:2]
    summary = label_frames(frames, db, LevelOfTheory(max_cycle=2, grid_level=1), workers=1, progress=False)
    assert summary.failed == 2 and summary.done == 0
    assert "SCF not converged within max_cycle=2" in str(summary)
    database = LabelDatabase(db)
    assert database.count("failed") == 2
    assert all("max_cycle=2" in row.reason for row in database.rows("failed"))
    with pytest.raises(InputError, match="no converged geometry"):
        LabelledDataset(db)


def test_split_is_reproducible_and_disjoint():
    a = split_indices(100, [0.8, 0.1, -1], seed=5)
    b = split_indices(100, [0.8, 0.1, -1], seed=5)
    assert [len(p) for p in a] == [80, 10, 10]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert len(set(np.concatenate(a).tolist())) == 100
    assert not np.array_equal(split_indices(100, [0.8, -1], seed=6)[0], a[0])
    with pytest.raises(InputError):
        split_indices(10, [8, 5])


BAD_INPUTS = {
    "unknown element": ("3\n\nO 0 0 0\nH 0 0 0.96\nOg 0.9 0 -0.3\n", "frame 0 of .*no functions for element Og"),
    "overlapping atoms": ("3\n\nO 0 0 0\nH 0 0 0.96\nH 0 0 0.99\n" * 1, "frame 0 of .*atoms 1 and 2 overlap"),
    "NaN coordinates": ("3\n\nO 0 0 0\nH 0 0 0.96\nH 0.9 0 -0.3\n3\n\nO 0 0 0\nH nan 0 0.96\nH 0.9 0 -0.3\n",
                        "frame 1 of .*atom 1 has non-finite coordinates"),
    "odd electrons": ("2\n\nO 0 0 0\nH 0 0 0.97\n", "frame 0 of .*9 electrons .* not a closed shell"),
    "charged": ('3\ncharge=1 pbc="F F F"\nO 0 0 0\nH 0 0 0.96\nH 0.9 0 -0.3\n',
                "frame 0 of .*total charge 1 is not supported"),
    "unreadable file": ("this is not\na geometry file\n", "cannot read .*give an xyz or extxyz file"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gives_one_clear_line_and_writes_nothing(case, tmp_path, capsys):
    text, pattern = BAD_INPUTS[case]
    path = tmp_path / "input.xyz"
    path.write_text(text)
    db = tmp_path / "out.db"
    assert main(["label", str(path), "-o", str(db), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("mlwfcalc label: error: ")
    import re
    assert re.search(pattern, err), err
    assert _rows(db) == 0


def test_missing_file_is_a_clear_error(tmp_path, capsys):
    assert main(["label", str(tmp_path / "nope.xyz"), "-o", str(tmp_path / "x.db")]) == 2
    assert "cannot read" in capsys.readouterr().err
