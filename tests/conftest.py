"""Shared fixtures: small molecules and random (improper) rotations."""

import numpy as np
import pytest
from ase.build import molecule
from pyscf import lib
from scipy.spatial.transform import Rotation

lib.num_threads(2)


def random_rotation(seed: int, improper: bool = False) -> np.ndarray:
    """A random rotation matrix (3, 3); times -1 (rotation-inversion) if ``improper``."""
    r = Rotation.random(random_state=seed).as_matrix()
    return -r if improper else r


@pytest.fixture
def water():
    atoms = molecule("H2O")
    atoms.positions += np.array([[0.02, -0.03, 0.01], [0.05, 0.01, -0.04], [-0.03, 0.04, 0.02]])
    return atoms


@pytest.fixture
def ethanol():
    return molecule("CH3CH2OH")


@pytest.fixture(scope="session")
def water_db(tmp_path_factory):
    """8 water geometries (500 K GFN2-xTB MD) labelled with PySCF PBE/def2-SVP at a coarse grid."""
    from ase.io import write

    from mlwfcalc.data import LabelSettings
    from mlwfcalc.data.labelling import label_frames, read_frames
    from mlwfcalc.data.sampling import sample_md

    folder = tmp_path_factory.mktemp("water_db")
    sample_md(molecule("H2O"), folder / "frames.extxyz", n_frames=8, interval=10, equilibration=20, seed=11,
              progress=False)
    db = folder / "water.db"
    summary = label_frames(read_frames([folder / "frames.extxyz"]), db, LabelSettings(grid_level=1, conv_tol=1e-9),
                           workers=2, progress=False)
    assert summary.done == 8
    return db
