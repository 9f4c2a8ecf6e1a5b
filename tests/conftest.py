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
