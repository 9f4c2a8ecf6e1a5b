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
    from mlwfcalc.theory import LevelOfTheory
    from mlwfcalc.data.labelling import label_frames, read_frames
    from mlwfcalc.data.sampling import sample_md

    folder = tmp_path_factory.mktemp("water_db")
    sample_md(molecule("H2O"), folder / "frames.extxyz", n_frames=8, interval=10, equilibration=20, seed=11,
              progress=False)
    db = folder / "water.db"
    summary = label_frames(read_frames([folder / "frames.extxyz"]), db, LevelOfTheory(grid_level=1, conv_tol=1e-9),
                           workers=2, progress=False)
    assert summary.done == 8
    return db


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A small random float64 model (H, C, O) with a random half-core energy head, saved as model files.

    It learns F - H_core, so F is H_core plus a small random part: orbitals with a gap, as real ones.
    """
    import torch

    from mlwfcalc.energy import EnergyConfig, EnergyHead
    from mlwfcalc.io import save_model
    from mlwfcalc.model import MLWFModel
    from mlwfcalc.nn.model import HamiltonianModel, ModelConfig
    from mlwfcalc.theory import LevelOfTheory

    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("tiny_model")
    network = HamiltonianModel(ModelConfig(elements=[1, 6, 8], channels=4, num_layers=1, num_radial=4,
                                           radial_hidden=8, target="fock-hcore"), dtype=torch.float64)
    network.heads.scale.fill_(0.02)  # a random part of F of tens of mHa, as a trained model's deviations
    head = EnergyHead(EnergyConfig(term="half-core", elements=[1, 6, 8], num_scalars=4, hidden=[8], features="scalars"))
    head.scale.fill_(300.0)  # an untrained network's scalars vary little with geometry: sizeable head forces
    save_model(MLWFModel(network, LevelOfTheory(grid_level=1), head), directory)
    return directory
