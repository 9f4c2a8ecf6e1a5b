"""The archived label sets in datasets/: every part is well formed, at the shipped level of theory, holds
each geometry once, and labels only geometries of its own committed frames."""

from dataclasses import replace
from pathlib import Path

import pytest
from ase.io import read

from mlwfcalc.data.archive import read_part, archive_parts
from mlwfcalc.data.records import geometry_key
from mlwfcalc.theory import LevelOfTheory

DATASETS = Path(__file__).resolve().parents[1] / "datasets"
LABEL_DIRECTORIES = sorted(d for d in DATASETS.glob("*/*") if d.is_dir() and archive_parts(d))


@pytest.mark.parametrize("directory", LABEL_DIRECTORIES, ids=lambda d: f"{d.parent.name}/{d.name}")
def test_archived_labels_are_sound_and_belong_to_the_committed_frames(directory):
    frames = {geometry_key(a.numbers, a.positions) for f in (directory.parent / "frames").glob("*.xyz")
              for a in read(f, index=":")}
    seen = set()
    for part in archive_parts(directory):
        header, _ = read_part(part)
        settings = LevelOfTheory.from_metadata(header["settings"])  # PBE/def2-SVP, grids 3, 1e-10, any gradient
        assert replace(settings, gradient="exact") == LevelOfTheory()
        keys = header["rows"]["geometry_key"]
        assert not seen & set(keys) and len(set(keys)) == len(keys), f"{part} repeats a geometry"
        assert set(keys) <= frames, f"{part} holds geometries that are not in {directory.parent / 'frames'}"
        seen |= set(keys)
