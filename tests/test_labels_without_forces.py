"""`mlwfcalc label --no-forces`: SCF-only training labels (F, energy, dipole) that are the same as full
labels' and survive packing, unpacking and loading; refused for correlated methods."""

import numpy as np
import pytest
from ase.build import molecule
from ase.io import write

from mlwfcalc.cli import main
from mlwfcalc.data import LabelDatabase, LabelledDataset
from mlwfcalc.data.archive import pack_labels, unpack_labels


@pytest.fixture(scope="module")
def water_frames(tmp_path_factory):
    path = tmp_path_factory.mktemp("frames") / "water.xyz"
    frames = []
    for k, stretch in enumerate((0.0, 0.04)):
        atoms = molecule("H2O")
        atoms.positions[1] *= 1 + stretch
        frames.append(atoms)
    write(path, frames, format="extxyz")
    return path


def test_labels_without_forces_match_full_labels_and_round_trip(water_frames, tmp_path, capsys):
    full, bare = tmp_path / "full.db", tmp_path / "bare.db"
    assert main(["label", str(water_frames), "-o", str(full), "--workers", "1", "-q"]) == 0
    assert main(["label", str(water_frames), "-o", str(bare), "--workers", "1", "--no-forces", "-q"]) == 0
    assert "labelled 2" in capsys.readouterr().out
    rows = LabelDatabase(bare).rows()
    assert [r.forces_labelled for r in rows] == [False, False] and all(r.get("forces") is None for r in rows)
    with_forces, without = LabelledDataset(full), LabelledDataset(bare)
    for a, b in zip(with_forces, without):
        assert a.key == b.key and b.forces is None and a.forces is not None
        assert abs(float(a.energy - b.energy)) < 1e-9  # Hartree: the same SCF
        assert np.abs((a.fock - b.fock).numpy()).max() < 1e-7 and np.allclose(a.dipole, b.dipole, atol=1e-7)

    archive, restored = tmp_path / "archive", tmp_path / "restored.db"
    pack_labels(bare, archive, fock_precision="float64")
    assert unpack_labels([archive], restored) == (2, 0)
    back = LabelledDataset(restored)
    for a, b in zip(without, back):
        assert b.forces is None and np.array_equal(a.fock, b.fock) and float(a.energy) == float(b.energy)
    assert all(r.forces_labelled is False for r in LabelDatabase(restored).rows())


def test_no_forces_is_refused_for_correlated_labels(water_frames, tmp_path, capsys):
    assert main(["label", str(water_frames), "-o", str(tmp_path / "cc.db"), "--method", "mp2", "--no-forces"]) == 2
    assert "drop --no-forces" in capsys.readouterr().err


def test_energy_head_fit_refuses_frames_without_forces_and_evaluation_skips_them(water_frames, tmp_path,
                                                                                 tiny_model_dir):
    from mlwfcalc.training.energy_fit import precompute
    from mlwfcalc.training.evaluation import evaluate
    from mlwfcalc.validation import InputError

    import mlwfcalc

    tiny = mlwfcalc.load_model(tiny_model_dir, device="cpu")
    bare = tmp_path / "bare.db"
    assert main(["label", str(water_frames), "-o", str(bare), "--workers", "1", "--no-forces", "-q"]) == 0
    dataset = LabelledDataset(bare)
    with pytest.raises(InputError, match="2 of 2 frames were labelled without forces"):
        precompute(tiny, dataset.samples, "none", "invariants", progress=False)
    report = evaluate(tiny, dataset, progress=False)
    assert report.force_mae_mev_per_a is None and report.energy_mae_mev is not None


def test_scf_only_labels_merge_with_labels_whose_forces_were_computed_another_way(water_frames, tmp_path):
    """An SCF-only archive (its gradient setting unused) unpacks beside one with exact forces into one
    database at the latter's settings; two archives whose forces were computed differently stay refused."""
    from mlwfcalc.validation import InputError

    exact, bare, ri = tmp_path / "exact.db", tmp_path / "bare.db", tmp_path / "ri.db"
    assert main(["label", f"{water_frames}@0:1", "-o", str(exact), "--workers", "1", "-q"]) == 0
    assert main(["label", f"{water_frames}@1:2", "-o", str(bare), "--workers", "1", "--no-forces",
                 "--gradient", "ri-j", "-q"]) == 0
    assert main(["label", f"{water_frames}@1:2", "-o", str(ri), "--workers", "1", "--gradient", "ri-j", "-q"]) == 0
    archives = {name: tmp_path / name for name in ("exact", "bare", "ri")}
    for name, db in (("exact", exact), ("bare", bare), ("ri", ri)):
        pack_labels(db, archives[name])
    merged = tmp_path / "merged.db"
    assert unpack_labels([archives["bare"], archives["exact"]], merged) == (2, 0)
    assert LabelDatabase(merged).settings.gradient == "exact"
    assert sorted(s.forces is None for s in LabelledDataset(merged)) == [False, True]
    with pytest.raises(InputError, match="mix levels of theory"):
        unpack_labels([archives["exact"], archives["ri"]], tmp_path / "refused.db")
