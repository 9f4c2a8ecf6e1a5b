"""Energies and forces from the predicted Hamiltonian: conservative forces, the energy head, the variational route."""

import json
import warnings

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule
from ase.calculators.fd import calculate_numerical_forces
from ase.units import Bohr
from pyscf import dft

import mlwfcalc
from mlwfcalc import MLWFCalculator
from mlwfcalc.data import LabelledDataset
from mlwfcalc.electronic import solve_orbitals
from mlwfcalc.energy import EnergyConfig, EnergyHead, core_hamiltonian
from mlwfcalc.io import save_model
from mlwfcalc.model import MLWFModel
from mlwfcalc.theory import LevelOfTheory
from mlwfcalc.predictor import Prediction
from mlwfcalc.pyscf import harris_energy, reference_scf, variational_energy
from mlwfcalc.training.energy_fit import (EnergyFitConfig, errors, fit_energy_head, head_energy_forces,
                                         model_errors, precompute)
from mlwfcalc.validation import InputError


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return mlwfcalc.load_model(tiny_model_dir, device="cpu", dtype=torch.float64)


@pytest.mark.parametrize("name", ["H2O", "CH3CH2OH"])
@pytest.mark.parametrize("term", ["half-core", "band", "none"])
def test_forces_are_minus_the_energy_gradient(tiny, name, term):
    """Autograd forces through network, S(R) and H_core(R) against central finite differences (float64)."""
    tiny.energy_head.config.term = term
    try:
        atoms = molecule(name)
        atoms.rattle(0.05, seed=3)
        atoms.calc = MLWFCalculator(tiny)
        forces = atoms.get_forces()
        numerical = calculate_numerical_forces(atoms, eps=1e-4)
    finally:
        tiny.energy_head.config.term = "half-core"
    assert np.abs(forces).max() > 0.1  # a real test: the random model has sizeable forces
    assert np.abs(forces - numerical).max() < 1e-3, np.abs(forces - numerical).max()


@pytest.mark.parametrize("name", ["H2O", "CH3CH2OH"])
def test_shipped_configuration_forces_match_finite_differences(tiny, name):
    """Target fock, term none, invariant features (what the shipped models use): F = -dE/dR, float64."""
    from mlwfcalc.predictor import HamiltonianPredictor

    width = tiny.network.invariant_width("invariants")
    torch.manual_seed(4)
    head = EnergyHead(EnergyConfig(term="none", elements=[1, 6, 8], num_scalars=width, hidden=[16],
                                   features="invariants"))
    head.scale.fill_(300.0)
    model = HamiltonianPredictor(MLWFModel(tiny.network, tiny.theory, head), tiny.device, tiny.path)
    atoms = molecule(name)
    atoms.rattle(0.05, seed=5)
    atoms.calc = MLWFCalculator(model)
    forces = atoms.get_forces()
    numerical = calculate_numerical_forces(atoms, eps=1e-4)
    assert np.abs(forces).max() > 0.1
    assert np.abs(forces - numerical).max() < 1e-3 * max(1.0, np.abs(forces).max()), np.abs(forces - numerical).max()


def test_core_hamiltonian_derivative_matches_finite_differences(ethanol):
    layout = mlwfcalc.basis.BasisLayout("def2-svp", [1, 6, 8])
    positions = torch.as_tensor(ethanol.positions / Bohr).requires_grad_(True)
    mol = layout.make_mole(ethanol.numbers, positions.detach().numpy())
    weights = torch.randn(mol.nao, mol.nao, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    (analytic,) = torch.autograd.grad((core_hamiltonian(mol, positions) * weights).sum(), positions)
    h = 1e-5
    for atom, axis in [(0, 0), (2, 1), (8, 2)]:
        values = []
        for step in (h, -h):
            moved = positions.detach().clone()
            moved[atom, axis] += step
            m = layout.make_mole(ethanol.numbers, moved.numpy())
            values.append(float(((torch.as_tensor(m.intor("int1e_kin") + m.intor("int1e_nuc"))) * weights).sum()))
        assert abs((values[0] - values[1]) / (2 * h) - float(analytic[atom, axis])) < 1e-6


@pytest.mark.parametrize("term", ["half-core", "none"])
def test_training_path_gives_the_models_own_forces(tiny, water_db, term):
    """Precomputed features + Jacobians (training) reproduce the full autograd energy and forces (inference)."""
    samples = LabelledDataset(water_db).samples[:3]
    tiny.energy_head.config.term = term
    try:
        (data,) = precompute(tiny, samples, term, "scalars", progress=False)
        energy, forces = (t.detach() for t in head_energy_forces(tiny.energy_head, data, create_graph=False))
        predictions = [tiny.predict(Atoms(s.numbers.numpy(), positions=s.positions.numpy() * Bohr), forces=True)
                       for s in samples]
        by_jacobians, by_model = errors(tiny.energy_head, [data]), model_errors(tiny, samples, batch_size=2)
    finally:
        tiny.energy_head.config.term = "half-core"
    assert np.abs(forces.numpy()).max() > 1e-3  # the head's own forces, through the feature Jacobians, are not zero
    for k, p in enumerate(predictions):
        assert abs(p.energy - float(energy[k])) < 1e-9
        assert np.abs(p.forces - forces[k].numpy()).max() < 1e-9
    for key, value in by_jacobians.items():
        assert by_model[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key


def test_fitting_the_head_lowers_energy_and_force_errors(tiny, water_db):
    """The shipped configuration (term none, invariant features): a short fit removes much of the error."""
    samples = LabelledDataset(water_db).samples
    train = precompute(tiny, samples[:6], "none", "invariants", progress=False)
    val = precompute(tiny, samples[6:], "none", "invariants", progress=False)
    config = EnergyFitConfig(term="none", features="invariants", hidden=[16], epochs=60, batch_size=6, lr=1e-2)
    head, history = fit_energy_head(train, val, [1, 6, 8], config, progress=False)
    width = tiny.network.invariant_width("invariants")
    baseline = EnergyHead(EnergyConfig(elements=[1, 6, 8], num_scalars=width, hidden=[16]))
    counts = torch.tensor([[2, 0, 1]] * 6)
    baseline.fit_statistics(train[0].scalars.reshape(-1, width), train[0].numbers.reshape(-1), counts,
                            train[0].energy - train[0].base_energy)
    torch.nn.init.zeros_(baseline.weights[-1])  # reference energies alone: zero forces
    before, after = errors(baseline, train), errors(head, train)
    assert after["force_mae_mev_per_a"] < 0.8 * before["force_mae_mev_per_a"], (before, after)
    assert after["energy_rmse_mev"] < before["energy_rmse_mev"], (before, after)
    assert history and history[-1]["epoch"] == 60


def test_head_from_other_network_weights_is_refused(tiny_model_dir, tmp_path):
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(tiny_model_dir, copy)
    network = mlwfcalc.load_model(copy, device="cpu").network
    with torch.no_grad():
        next(network.parameters()).add_(0.1)
    config = json.loads((copy / "config.json").read_text())
    save_model(MLWFModel(network, LevelOfTheory(grid_level=1)), copy)
    (copy / "config.json").write_text(json.dumps({**json.loads((copy / "config.json").read_text()),
                                                  "energy": config["energy"]}))
    with pytest.raises(InputError, match="fitted to other network weights"):
        mlwfcalc.load_model(copy, device="cpu")
    (copy / "energy.safetensors").write_bytes(b"not a safetensors file")
    config["energy"]["network_sha256"] = mlwfcalc.io.weights_fingerprint(copy)
    (copy / "config.json").write_text(json.dumps({**json.loads((copy / "config.json").read_text()),
                                                  "energy": config["energy"]}))
    with pytest.raises(InputError, match="energy.safetensors is corrupt"):
        mlwfcalc.load_model(copy, device="cpu")


def test_model_without_energy_head_says_how_to_get_one(tiny_model_dir, tmp_path):
    network = mlwfcalc.load_model(tiny_model_dir, device="cpu").network
    save_model(MLWFModel(network, LevelOfTheory()), tmp_path)
    model = mlwfcalc.load_model(tmp_path, device="cpu")
    assert model.predict(molecule("H2O")).energy is None
    with pytest.raises(InputError, match="no energy head.*train-energy"):
        model.predict(molecule("H2O"), forces=True)
    with pytest.raises(InputError, match="mode='harris'.*train-energy"):
        MLWFCalculator(model, mode="ml")
    assert MLWFCalculator(model).parameters.mode == "harris"  # the default follows what the model can do


def test_variational_energy_at_the_scf_density_is_the_scf_energy(tiny, water):
    mol = tiny.make_mole(water)
    mf = reference_scf(tiny, mol, conv_tol=1e-11)
    mf.kernel()
    p = Prediction(fock=mf.get_fock(), overlap=mf.get_ovlp(), mo_energy=mf.mo_energy, mo_coeff=mf.mo_coeff,
                   mo_occ=mf.mo_occ, density_matrix=mf.make_rdm1(), mol=mol)
    assert abs(variational_energy(tiny, p) - mf.e_tot) < 1e-8
    assert abs(harris_energy(tiny, p) - mf.e_tot) < 1e-8
    # second order: 10x less noise in F cuts the energy error about 100x (and keeps it >= 0)

    def energy_error(scale):
        noise = scale * np.random.default_rng(0).standard_normal(p.fock.shape)
        o = solve_orbitals(torch.as_tensor(p.fock + noise + noise.T), torch.as_tensor(p.overlap), mol.nelectron)
        perturbed = Prediction(fock=p.fock, overlap=p.overlap, mo_energy=o.energies.numpy(),
                               mo_coeff=o.coefficients.numpy(), mo_occ=o.occupations.numpy(),
                               density_matrix=o.density_matrix().numpy(), mol=mol)
        return variational_energy(tiny, perturbed) - mf.e_tot, perturbed

    (large, perturbed), (small, _) = energy_error(1e-3), energy_error(1e-4)
    # Harris-Foulkes from the same density lies below E_KS[P] (P_out minimises tr(P F[P_in]))
    assert harris_energy(tiny, perturbed) - mf.e_tot < large
    assert large > 0 and small > 0
    assert 50 < large / small < 200, (large, small)


def test_charged_and_open_shell_molecules_are_refused(tiny, water):
    with pytest.raises(InputError, match="charge"):
        tiny.predict(water, charge=1, forces=True)
    with pytest.raises(InputError):
        tiny.predict(water, spin=2)
    with pytest.raises(InputError, match="odd|electrons|spin"):
        tiny.predict(Atoms("OH", positions=[[0, 0, 0], [0, 0, 0.97]]))


def test_near_linear_dependence_warns_and_stays_finite(water):
    """A duplicated AO makes S singular: the eigensolve drops it with a warning, not NaN."""
    layout = mlwfcalc.basis.BasisLayout("def2-svp", [1, 8])
    mol = layout.make_mole(water.numbers, water.positions / Bohr)
    mf = dft.RKS(mol, xc="pbe")
    mf.verbose = 0
    mf.kernel()
    fock, overlap = mf.get_fock(), mf.get_ovlp()
    reference = solve_orbitals(torch.as_tensor(fock), torch.as_tensor(overlap), mol.nelectron).energies.numpy()
    index = list(range(mol.nao)) + [mol.nao - 1]  # the last AO twice
    duplicated_s = overlap[np.ix_(index, index)] + 1e-10 * np.eye(mol.nao + 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        orbitals = solve_orbitals(torch.as_tensor(fock[np.ix_(index, index)]), torch.as_tensor(duplicated_s),
                                  mol.nelectron)
    assert any("nearly singular" in str(w.message) for w in caught)
    assert torch.isfinite(orbitals.energies).all() and torch.isfinite(orbitals.coefficients).all()
    assert np.abs(orbitals.energies.numpy()[:5] - reference[:5]).max() < 1e-6


def test_head_that_does_not_fit_the_network_is_refused(tiny_model_dir, tmp_path):
    """A config whose head features disagree with the network fails at load, naming the fix."""
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(tiny_model_dir, copy)
    config = json.loads((copy / "config.json").read_text())
    config["energy"]["config"]["features"] = "invariants"  # 4 scalars recorded, the network gives more invariants
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="does not fit the network.*train-energy"):
        mlwfcalc.load_model(copy, device="cpu")
    config["energy"]["config"]["features"] = "norms"
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="unknown energy-head features 'norms'"):
        mlwfcalc.load_model(copy, device="cpu")


def test_held_out_scores_leave_out_and_count_molecules_outside_the_domain(tiny, water_db):
    """A test set with a molecule the model refuses (an O-H bond stretched 0.6 A past training) is scored on the
    rest, not aborted: `train-energy --test` on a chemical-space test set must survive its novel molecules."""
    import dataclasses

    from mlwfcalc.domain import TrainingDomain

    samples = LabelledDataset(water_db).samples[:4]
    stretched = samples[0].positions.clone()
    stretched[1] += (stretched[1] - stretched[0]) / (stretched[1] - stretched[0]).norm() * 0.6 / Bohr
    outside = dataclasses.replace(samples[0], positions=stretched)
    saved = tiny.model.domain
    tiny.model.domain = TrainingDomain.from_structures(
        [(s.numbers.numpy(), s.positions.numpy() * Bohr) for s in samples], margin_ang=0.1)
    try:
        scored = model_errors(tiny, samples + [outside], batch_size=2)
        inside_only = model_errors(tiny, samples, batch_size=2)
        with pytest.raises(ValueError, match="all 1 molecules lie outside"):
            model_errors(tiny, [outside])
    finally:
        tiny.model.domain = saved
    assert (scored["n_molecules"], scored["n_outside_domain"], inside_only["n_outside_domain"]) == (4, 1, 0)
    assert scored["energy_mae_mev"] == pytest.approx(inside_only["energy_mae_mev"], rel=1e-12)


def test_train_energy_command_writes_a_head_that_loads(tiny_model_dir, water_db, tmp_path):
    """`mlwfcalc train-energy` with its defaults (term none, invariant features) writes a head the model loads."""
    import shutil

    from mlwfcalc.cli import main

    copy = tmp_path / "model"
    shutil.copytree(tiny_model_dir, copy)
    assert main(["train-energy", str(copy), str(water_db), "--epochs", "10", "--hidden", "8", "--n-train", "6",
                 "--n-val", "2", "--test", str(water_db), "--threads", "1", "-q"]) == 0
    model = mlwfcalc.load_model(copy, device="cpu")
    head = model.energy_head.config
    assert (head.term, head.features) == ("none", "invariants")
    assert head.num_scalars == model.network.invariant_width("invariants") > 4
    recorded = json.loads((copy / "config.json").read_text())["energy"]["training"]
    assert recorded["n_train"] == 6 and recorded["test"]["n_molecules"] == 8
    rescored = model_errors(model, LabelledDataset(water_db).samples)
    assert rescored["energy_mae_mev"] == pytest.approx(recorded["test"]["energy_mae_mev"], rel=1e-6)
