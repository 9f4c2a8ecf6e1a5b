"""Broad sampling (several temperatures and seeds, normal-mode distortions) and the selection of frames to label."""

import warnings

import numpy as np
import pytest
from ase.build import molecule
from ase.io import read, write

from mlwfcalc.cli import main
from mlwfcalc.data.selection import deduplicate, farthest_point_order


def oh_lengths(frames):
    return np.concatenate([np.linalg.norm(a.positions[1:] - a.positions[0], axis=1) for a in frames])


def test_md_over_temperatures_and_seeds_writes_one_file(tmp_path, capsys):
    path = tmp_path / "pool.extxyz"
    assert main(["sample", "H2O", "-o", str(path), "--temperature", "300,900", "--seed", "3,4", "--frames", "2",
                 "--interval", "5", "--equilibration", "5", "-q"]) == 0
    frames = read(path, ":")
    assert len(frames) == 8
    assert sorted({(a.info["target_temperature_K"], a.info["seed"]) for a in frames}) == \
        [(300.0, 3), (300.0, 4), (900.0, 3), (900.0, 4)]
    assert "300, 900 K, seeds 3, 4" in capsys.readouterr().out
    assert main(["sample", "H2O", "-o", str(tmp_path / "x.xyz"), "--temperature", "hot"]) == 2


def test_normal_mode_frames_spread_with_temperature(tmp_path):
    path = tmp_path / "modes.extxyz"
    assert main(["sample", "H2O", "-o", str(path), "--method", "normal-modes", "--temperature", "300,3000",
                 "--frames", "120", "--seed", "5", "-q"]) == 0
    frames = read(path, ":")
    cold = [a for a in frames if a.info["target_temperature_K"] == 300]
    hot = [a for a in frames if a.info["target_temperature_K"] == 3000]
    assert len(cold) == len(hot) == 60 and all(a.info["method"] == "normal-modes" for a in frames)
    # classical harmonic amplitudes grow as sqrt(T): about 3.2x from 300 to 3000 K
    assert 2.0 < oh_lengths(hot).std() / oh_lengths(cold).std() < 4.5
    assert 0.9 < np.median(oh_lengths(cold)) < 1.0  # around the GFN2-xTB minimum


def test_deduplicate_drops_repeats_and_keeps_distinct_frames():
    water = molecule("H2O")
    moved = water.copy()
    bond = moved.positions[1] - moved.positions[0]
    moved.positions[1] += 0.02 * bond / np.linalg.norm(bond)  # O-H 0.02 A longer
    turned = water.copy()
    turned.rotate(40, "z")  # the same geometry, rotated: a duplicate for the labels
    assert deduplicate([water, moved, turned, water.copy(), molecule("NH3")]) == [0, 1, 4]


def test_farthest_point_order_covers_the_extremes():
    points = np.array([[0.0, 0.0], [0.1, 0.0], [10.0, 0.0], [0.0, 5.0], [0.2, 0.1]])
    assert farthest_point_order(points, 3, first=0) == [0, 2, 3]


def test_select_picks_the_frames_the_model_knows_least(tmp_path, capsys):
    """From a pool of hot and cold normal-mode frames, uncertainty selection takes hot ones; --exclude skips
    frames already labelled."""
    pool = tmp_path / "pool.extxyz"
    assert main(["sample", "H2O", "-o", str(pool), "--method", "normal-modes", "--temperature", "300,2500",
                 "--frames", "40", "-q"]) == 0
    picked = tmp_path / "picked.extxyz"
    assert main(["select", str(pool), "-o", str(picked), "--model", "water-pbe-def2svp", "--n", "10",
                 "--by", "uncertainty", "-q"]) == 0
    frames = read(picked, ":")
    assert len(frames) == 10 and sum(a.info["target_temperature_K"] == 2500 for a in frames) >= 8
    assert "wrote 10 frames (uncertainty)" in capsys.readouterr().out
    assert main(["select", str(pool), "-o", str(tmp_path / "fps.extxyz"), "--model", "water-pbe-def2svp",
                 "--n", "40", "-q"]) == 0
    assert len(read(tmp_path / "fps.extxyz", ":")) == 40
    write(tmp_path / "few.extxyz", read(pool, ":3"))
    with pytest.raises(SystemExit):
        main(["select", str(pool), "-o", str(picked), "--model", "water-pbe-def2svp"])  # --n is required


def test_tautomer_path_reaches_the_symmetric_structure_and_refuses_wrong_mappings(tmp_path):
    """Malondialdehyde's proton transfer: halfway along the path every frame is symmetric under the
    relabelling (the proton equidistant from both O, each C-H pair alike); a mapping that swaps the
    wrong atoms, or none, is refused with the reason."""
    from mlwfcalc.data.sampling import sample_tautomer_path
    from mlwfcalc.validation import InputError

    start = read("examples/structures/malondialdehyde.xyz")
    frames = []
    for k in range(6):
        frame = start.copy()
        frame.rattle(0.05, seed=k)
        frames.append(frame)
    mapping = [4, 3, 2, 1, 0, 5, 8, 7, 6]  # O C C C O H H H H: the two halves swap, the proton stays
    halfway = sample_tautomer_path(frames, tmp_path / "half.xyz", mapping=mapping, n_frames=6, min_fraction=0.5)
    for frame in halfway:
        assert frame.info["method"] == "tautomer-path" and frame.info["path_fraction"] == 0.5
        assert abs(frame.get_distance(0, 5) - frame.get_distance(4, 5)) < 1e-8
        assert abs(frame.get_distance(1, 6) - frame.get_distance(3, 8)) < 1e-8
        assert 1.1 < frame.get_distance(0, 5) < 1.7  # between the O-H bond and the hydrogen bond
    spread = sample_tautomer_path(frames, tmp_path / "path.xyz", mapping=mapping, n_frames=6, seed=1)
    fractions = [f.info["path_fraction"] for f in spread]
    assert all(0.1 <= f <= 0.5 for f in fractions) and len(set(fractions)) == 6
    assert len(read(tmp_path / "path.xyz", index=":")) == 6
    with pytest.raises(InputError, match="apart halfway"):
        sample_tautomer_path(frames, tmp_path / "bad.xyz", mapping=[4, 3, 2, 1, 0, 5, 8, 6, 7])
    with pytest.raises(InputError, match="identity"):
        sample_tautomer_path(frames, tmp_path / "none.xyz", mapping=list(range(9)))
    with pytest.raises(InputError, match="same element"):
        sample_tautomer_path(frames, tmp_path / "elements.xyz", mapping=[5, 3, 2, 1, 0, 4, 8, 7, 6])


def test_md_keeping_bonds_drops_frames_that_reacted(tmp_path, monkeypatch):
    """A hot chemical-space molecule that dissociates or moves a proton is another molecule than its SMILES:
    with keep_bonds its frames are not written; the bond-graph test itself is checked on water."""
    from mlwfcalc.data import sampling
    from mlwfcalc.validation import InputError

    water = molecule("H2O")
    assert sampling.bonds_kept(water, water.positions + 0.02)
    stretched = water.positions.copy()
    stretched[1] = stretched[0] + 1.35 * (stretched[1] - stretched[0])  # 1.3 A: still "bonded", but coming apart
    assert not sampling.bonds_kept(water, stretched)
    hydrogens_meet = water.positions.copy()
    hydrogens_meet[2] = hydrogens_meet[1] + [0.7, 0, 0]  # a new H-H bond (0.7 A)
    assert not sampling.bonds_kept(water, hydrogens_meet)

    frames = sampling.sample_md(water, tmp_path / "kept.xyz", temperature_K=600, n_frames=3, interval=5,
                                equilibration=5, keep_bonds=True, progress=False)
    assert len(frames) == 3 and all(sampling.bonds_kept(water, f.positions) for f in frames)
    monkeypatch.setattr(sampling, "MAX_BOND_STRETCH", 0.5)  # now every frame counts as coming apart
    with pytest.raises(InputError, match="lower temperature"):
        sampling.sample_md(water, tmp_path / "gone.xyz", temperature_K=600, n_frames=1, interval=2, equilibration=0,
                           keep_bonds=True, progress=False)


def test_molecules_whose_bonds_change_are_left_out_and_the_run_resumes(tmp_path, monkeypatch):
    """With several starts a molecule that keeps no bond graph is left out with a warning, and the marker it
    leaves in OUTPUT.part lets a stopped run resume past it."""
    from mlwfcalc.data import sampling
    from mlwfcalc.validation import InputError

    hydrogen, water = molecule("H2"), molecule("H2O")
    hydrogen.info["smiles"], water.info["smiles"] = "[H][H]", "O"
    monkeypatch.setattr(sampling, "NEW_BOND_FACTOR", 5.0)  # water's H-H pair now "forms a bond"; H2 has no other pair
    md = dict(temperatures_K=[300.0], seeds=[1], n_frames=2, interval=3, equilibration=2, keep_bonds=True,
              progress=False)
    with pytest.warns(UserWarning, match="molecule 1 left out: O: its GFN2-xTB relaxation"):
        frames = sampling.sample_trajectories([hydrogen, water], tmp_path / "all.xyz", **md)
    assert [f.get_chemical_formula() for f in frames] == ["H2", "H2"] == [a.get_chemical_formula()
                                                                          for a in read(tmp_path / "all.xyz", ":")]
    part = [f.copy() for f in frames] + [water.copy()]  # a stopped run: H2 done, water's marker written
    part[-1].info.update(start_index=1, left_out="O: relaxation broke a bond", runs="300K/1")
    write(tmp_path / "again.xyz.part", part, format="extxyz")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # water is not relaxed again: its marker says it was left out
        resumed = sampling.sample_trajectories([hydrogen, water], tmp_path / "again.xyz", **md)
    np.testing.assert_allclose(np.concatenate([f.positions for f in resumed]),
                               np.concatenate([f.positions for f in frames]), atol=1e-8)
    write(tmp_path / "cut.xyz.part", part, format="extxyz")  # killed while appending the next molecule
    with open(tmp_path / "cut.xyz.part", "a") as handle:
        handle.write("3\nProperties=species:S:1:pos:R:3 start_index=2\nH 0.0")
    assert len(sampling._finished_molecules(tmp_path / "cut.xyz.part", [hydrogen, water], [(300.0, 1)], 2,
                                            keep_bonds=True)) == 2
    assert len(read(tmp_path / "cut.xyz.part", ":", format="extxyz")) == 3  # the torn frame is gone: the next append reads back
    with pytest.raises(InputError, match="allows reactions"):  # markers of a bond-keeping run, resumed without
        sampling.sample_trajectories([hydrogen, water], tmp_path / "cut.xyz", **{**md, "keep_bonds": False})
