"""Label archives: `mlwfcalc pack-labels` / `unpack-labels` round trips, incremental parts, refusals."""

import shutil

import numpy as np
import pytest
from ase.db import connect
from ase.units import Hartree

from mlwfcalc.cli import main
from mlwfcalc.data import LabelDatabase, LabelledDataset
from mlwfcalc.data.archive import archive_parts, archived_keys, pack_labels, unpack_labels
from mlwfcalc.data.records import Frame, LabelResult
from mlwfcalc.theory import LevelOfTheory
from mlwfcalc.validation import InputError


def _by_key(db_path):
    return {s.key: s for s in LabelledDataset(db_path)}


@pytest.mark.parametrize("precision, fock_atol", [("float64", 0.0), ("float32", 2e-6)])
def test_pack_then_unpack_gives_back_every_label(water_db, tmp_path, capsys, precision, fock_atol):
    archive = tmp_path / "archive"
    assert main(["pack-labels", str(water_db), "-o", str(archive), "--fock-precision", precision]) == 0
    assert "wrote 8 rows" in capsys.readouterr().out
    assert [p.name for p in archive_parts(archive)] == ["part-000.safetensors"]
    assert main(["pack-labels", str(water_db), "-o", str(archive)]) == 0  # nothing new: no empty part
    assert "archived already" in capsys.readouterr().out and len(archive_parts(archive)) == 1

    restored = tmp_path / "restored.db"
    assert main(["unpack-labels", str(archive), "-o", str(restored)]) == 0
    assert "wrote 8 archived rows" in capsys.readouterr().out
    assert LabelDatabase(restored).settings == LabelDatabase(water_db).settings
    original, back = _by_key(water_db), _by_key(restored)
    assert original.keys() == back.keys()
    for key, a in original.items():
        b = back[key]
        assert np.array_equal(a.numbers, b.numbers) and np.array_equal(a.positions, b.positions)
        assert abs(float(a.energy - b.energy)) < 1e-10  # Hartree
        assert np.allclose(a.forces, b.forces, rtol=0, atol=1e-12) and np.allclose(a.dipole, b.dipole, atol=1e-12)
        assert np.abs((a.fock - b.fock).numpy()).max() <= fock_atol
        assert np.array_equal(b.fock, b.fock.T)
    assert main(["unpack-labels", str(archive), "-o", str(restored)]) == 0  # again: nothing duplicated
    assert "wrote 0 archived rows" in capsys.readouterr().out and LabelDatabase(restored).count() == 8


def test_each_pack_adds_a_part_with_only_the_new_rows_failed_ones_included(water_db, tmp_path):
    partial = tmp_path / "partial.db"
    shutil.copy(water_db, partial)
    with connect(str(partial)) as db:
        ids = [row.id for row in db.select()]
        db.delete(ids[:5])
    archive = tmp_path / "archive"
    path, rows = pack_labels(partial, archive)
    assert path.name == "part-000.safetensors" and rows == 3

    full = tmp_path / "full.db"
    shutil.copy(water_db, full)
    failed = Frame(source="extra.xyz", index=0, numbers=np.array([8, 1, 1]),
                   positions=np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.97], [0.0, 0.93, -0.25]]))
    LabelDatabase(full).write(LabelResult(failed, False, cycles=2, seconds=0.5, reason="SCF not converged"))
    path, rows = pack_labels(full, archive)
    assert path.name == "part-001.safetensors" and rows == 6  # 5 more converged rows and the failed one
    assert archived_keys(archive) == LabelDatabase(full).keys()

    restored = tmp_path / "restored.db"
    assert unpack_labels([archive], restored) == (9, 0)
    database = LabelDatabase(restored)
    assert database.count("ok") == 8 and database.count("failed") == 1
    assert database.rows("failed")[0].reason == "SCF not converged"
    assert len(LabelledDataset(restored)) == 8  # the failed row is kept but never trained on


def test_an_archive_at_other_settings_is_refused(water_db, tmp_path, capsys):
    archive = tmp_path / "archive"
    pack_labels(water_db, archive)
    other = tmp_path / "other.db"
    LabelDatabase(other, LevelOfTheory(grid_level=2))
    with pytest.raises(InputError, match="other settings"):
        unpack_labels([archive], other)
    frame = Frame(source="x.xyz", index=0, numbers=np.array([1, 1]), positions=np.array([[0.0, 0, 0], [0, 0, 0.74]]))
    LabelDatabase(other).write(LabelResult(frame, False, reason="test"))
    with pytest.raises(InputError, match="pack it into another directory"):
        pack_labels(other, archive)
    assert main(["unpack-labels", str(tmp_path / "empty"), "-o", str(tmp_path / "x.db")]) == 2
    assert "no part-NNN.safetensors" in capsys.readouterr().err


def test_a_corrupt_or_malformed_part_is_refused_before_the_database_is_made(water_db, tmp_path):
    from safetensors.numpy import load_file, save_file
    from safetensors import safe_open

    archive = tmp_path / "archive"
    part, _ = pack_labels(water_db, archive)
    with safe_open(str(part), framework="numpy") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(part))
    tensors["positions"] = tensors["positions"] + 1e-3  # the keys no longer match
    save_file(tensors, str(part), metadata=metadata)
    target = tmp_path / "never.db"
    with pytest.raises(InputError, match="corrupt"):
        unpack_labels([archive], target)
    del tensors["forces"]
    save_file(tensors, str(part), metadata=metadata)
    with pytest.raises(InputError, match="malformed.*no tensor 'forces'"):
        unpack_labels([archive], target)
    assert not target.exists()


def test_correlated_labels_without_f_round_trip(tmp_path):
    settings = LevelOfTheory(method="MP2", basis="sto-3g")
    db_path = tmp_path / "mp2.db"
    frame = Frame(source="h2.xyz", index=0, numbers=np.array([1, 1]), positions=np.array([[0.0, 0, 0], [0, 0, 0.74]]))
    LabelDatabase(db_path, settings).write(LabelResult(frame, True, cycles=3, seconds=0.1, energy=-1.1,
                                                       forces=np.zeros((2, 3)), dipole=np.zeros(3)))
    archive = tmp_path / "archive"
    pack_labels(db_path, archive)
    restored = tmp_path / "restored.db"
    assert unpack_labels([archive], restored) == (1, 0)
    assert LabelDatabase(restored).settings == settings
    row = LabelDatabase(restored).rows()[0]
    assert "fock" not in row.data and abs(row.energy / Hartree + 1.1) < 1e-12
