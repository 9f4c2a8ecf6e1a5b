"""Batched inference equals one-by-one inference; the CUDA path equals the CPU path (skipped without a GPU)."""

import numpy as np
import pytest
import torch
from ase.build import molecule

import mlwfcalc
from mlwfcalc.calculator import MLWFCalculator
from mlwfcalc.validation import InputError

from conftest import random_rotation

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch")


def mixed_molecules() -> list:
    """Water and ethanol, distorted and rotated, interleaved: molecules of 3 and 9 atoms in one batch."""
    rng = np.random.default_rng(3)
    images = []
    for k, name in enumerate(["H2O", "CH3CH2OH", "H2O", "CH3CH2OH", "CH3CH2OH"]):
        atoms = molecule(name)
        atoms.positions = atoms.positions @ random_rotation(k).T + rng.normal(scale=0.05, size=atoms.positions.shape)
        images.append(atoms)
    return images


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture(scope="module")
def tiny32(tiny_model_dir):
    return mlwfcalc.load_model(tiny_model_dir, device="cpu", dtype=torch.float32)


def test_batched_predictions_equal_one_by_one_in_float32(tiny32):
    images = mixed_molecules()
    batched = tiny32.predict(images, forces=True)
    for atoms, together in zip(images, batched):
        alone = tiny32.predict(atoms, forces=True)
        assert together.mol.natm == len(atoms)
        assert relative(together.fock, alone.fock) < 1e-6
        assert relative(together.density_matrix, alone.density_matrix) < 1e-6
        assert abs(together.energy - alone.energy) / abs(alone.energy) < 1e-6
        assert relative(together.forces, alone.forces) < 1e-6


def test_batch_size_splits_without_changing_results(tiny32):
    images = mixed_molecules()
    whole = tiny32.predict(images, forces=True)
    split = tiny32.predict(images, forces=True, batch_size=2)
    assert len(split) == len(images)
    for a, b in zip(split, whole):
        assert relative(a.fock, b.fock) < 1e-6 and relative(a.forces, b.forces) < 1e-6
    assert tiny32.predict([]) == []
    with pytest.raises(InputError, match="batch_size"):
        tiny32.predict(images, batch_size=0)


def test_batch_names_the_molecule_that_is_refused(tiny32):
    images = mixed_molecules()
    images[3] = molecule("NH3")
    with pytest.raises(InputError, match="molecule 3"):
        tiny32.predict(images)


def test_calculator_batch_matches_single_calls(tiny_model_dir):
    calc = MLWFCalculator(tiny_model_dir, device="cpu", dtype=torch.float64)
    images = mixed_molecules()
    energies = calc.calculate_batch(images, batch_size=3)
    assert calc.calls == 2
    single = MLWFCalculator(tiny_model_dir, device="cpu", dtype=torch.float64)
    for image, energy in zip(images, energies):
        reference = image.copy()
        reference.calc = single
        assert image.get_potential_energy() == pytest.approx(energy)
        assert energy == pytest.approx(reference.get_potential_energy(), abs=1e-8)
        np.testing.assert_allclose(image.get_forces(), reference.get_forces(), atol=1e-8)
        np.testing.assert_allclose(image.get_dipole_moment(), reference.get_dipole_moment(), atol=1e-8)
        np.testing.assert_allclose(image.get_charges(), reference.get_charges(), atol=1e-8)


def test_calculator_batch_refuses_mixed_charges_and_scf_mode(tiny_model_dir):
    images = mixed_molecules()[:2]
    images[1].info["charge"] = 1
    with pytest.raises(InputError, match="one charge and spin"):
        MLWFCalculator(tiny_model_dir, device="cpu").calculate_batch(images)
    with pytest.raises(InputError, match="mode='ml'"):
        MLWFCalculator(tiny_model_dir, device="cpu", mode="scf").calculate_batch(images[:1])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_clear_error(tiny_model_dir):
    with pytest.raises(InputError, match="no CUDA GPU"):
        mlwfcalc.load_model(tiny_model_dir, device="cuda")


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_predictions_equal_cpu_predictions(tiny_model_dir, dtype):
    images = mixed_molecules()
    cpu = mlwfcalc.load_model(tiny_model_dir, device="cpu", dtype=dtype).predict(images, forces=True)
    gpu_model = mlwfcalc.load_model(tiny_model_dir, device="cuda", dtype=dtype)
    assert next(gpu_model.network.parameters()).is_cuda
    gpu = gpu_model.predict(images, forces=True)
    for a, b in zip(gpu, cpu):
        assert relative(a.fock, b.fock) < 1e-5
        assert abs(a.energy - b.energy) / abs(b.energy) < 1e-5
        assert relative(a.forces, b.forces) < 1e-5


@needs_cuda
def test_shipped_model_runs_on_cuda_through_the_calculator():
    atoms = molecule("H2O")
    atoms.calc = MLWFCalculator("water-pbe-def2svp", device="cuda")
    cpu = molecule("H2O")
    cpu.calc = MLWFCalculator("water-pbe-def2svp", device="cpu")
    assert atoms.get_potential_energy() == pytest.approx(cpu.get_potential_energy(), rel=1e-5)
    np.testing.assert_allclose(atoms.get_forces(), cpu.get_forces(), atol=1e-5 * np.abs(cpu.get_forces()).max() + 1e-6)
