"""The equivariant network: symmetry of F under rotations, inversion, translations and permutations."""

import numpy as np
import pytest
import torch
from ase.build import molecule
from ase.units import Bohr

from mlwfcalc.nn import HamiltonianModel, ModelConfig, make_batch

from conftest import random_rotation

TINY = dict(elements=[1, 6, 8], channels=4, num_layers=2, num_radial=4, radial_hidden=8)


def _fock(model, atoms, positions=None):
    dtype = next(model.parameters()).dtype
    positions = atoms.positions / Bohr if positions is None else positions
    batch = make_batch(model.layout, [torch.as_tensor(atoms.numbers)], [torch.as_tensor(positions, dtype=dtype)],
                       model.config.cutoff)
    with torch.no_grad():
        return model(batch)[0].to(torch.float64).numpy()


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("name", ["H2O", "CH3CH2OH"])
def test_rotation_inversion_translation_equivariance(name, dtype, tolerance):
    torch.manual_seed(0)
    model = HamiltonianModel(ModelConfig(**TINY), dtype=dtype)
    atoms = molecule(name)
    f0 = _fock(model, atoms)
    scale = np.abs(f0).max()
    assert scale > 1e-3 and np.allclose(f0, f0.T)
    for seed, improper in [(1, False), (2, True), (3, True)]:
        rotation = random_rotation(seed, improper)
        shift = np.array([0.7, -1.3, 2.1])
        f1 = _fock(model, atoms, atoms.positions / Bohr @ rotation.T + shift)
        d = model.layout.wigner_D(atoms.numbers, rotation)
        assert np.abs(f1 - d @ f0 @ d.T).max() / scale < tolerance
    f_translated = _fock(model, atoms, atoms.positions / Bohr + 5.0)
    assert np.abs(f_translated - f0).max() / scale < tolerance


def test_node_invariants_are_invariant_under_rotation_and_inversion():
    """The energy head's inputs: 0e channels plus squared norms of all other channels, in float64."""
    torch.manual_seed(0)
    # three layers, as shipped: pseudoscalars (0o) need an unnatural-parity input, which layer 2 first makes
    model = HamiltonianModel(ModelConfig(**{**TINY, "num_layers": 3}), dtype=torch.float64)
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.1, seed=0)  # no mirror plane: pseudoscalars (0o) of in-plane atoms would vanish

    def invariants(positions, features):
        batch = make_batch(model.layout, [torch.as_tensor(atoms.numbers)], [torch.as_tensor(positions)],
                           model.config.cutoff)
        with torch.no_grad():
            return model.invariants(model.fock_and_nodes(batch)[1], features).numpy()

    reference = invariants(atoms.positions / Bohr, "invariants")
    assert reference.shape == (9, model.invariant_width("invariants")) == (9, 5 * 8)  # one per (l, channel)
    scalars = invariants(atoms.positions / Bohr, "scalars")
    assert scalars.shape == (9, 4) and np.array_equal(scalars, reference[:, :4])
    assert np.abs(reference[:, 4:]).min() > 0  # the norms carry something
    for seed, improper in [(1, False), (2, True)]:
        moved = atoms.positions / Bohr @ random_rotation(seed, improper).T + 1.5
        assert np.abs(invariants(moved, "invariants") - reference).max() < 1e-10 * np.abs(reference).max()


def test_permuting_atoms_permutes_blocks():
    torch.manual_seed(1)
    model = HamiltonianModel(ModelConfig(**TINY), dtype=torch.float64)
    atoms = molecule("CH3CH2OH")
    order = np.random.default_rng(0).permutation(len(atoms))
    f0 = _fock(model, atoms)
    f1 = _fock(model, atoms[order])
    slices = model.layout.ao_slices(atoms.numbers)
    ao_order = np.concatenate([np.arange(slices[i].start, slices[i].stop) for i in order])
    assert np.abs(f1 - f0[np.ix_(ao_order, ao_order)]).max() < 1e-12


def test_batched_molecules_match_single_ones():
    torch.manual_seed(2)
    model = HamiltonianModel(ModelConfig(**TINY), dtype=torch.float64)
    mols = [molecule("H2O"), molecule("CH3CH2OH"), molecule("CH4")]
    batch = make_batch(model.layout, [torch.as_tensor(m.numbers) for m in mols],
                       [torch.as_tensor(m.positions / Bohr) for m in mols], model.config.cutoff)
    with torch.no_grad():
        together = model(batch)
    for k, m in enumerate(mols):
        n = model.layout.nao(m.numbers)
        assert np.abs(together[k, :n, :n].numpy() - _fock(model, m)).max() < 1e-12
        assert float(together[k, n:].abs().sum()) == 0.0 and float(together[k, :, n:].abs().sum()) == 0.0  # padding


def test_a_lone_atom_has_no_edges_and_still_gets_its_block():
    """A batch without edges (one atom) runs: its on-site block, a finite energy, zero force.

    (The water model refuses an O atom by default, tests/test_domain.py; the network itself must cope.)
    """
    import mlwfcalc
    from ase import Atoms

    model = mlwfcalc.load_model("water-pbe-def2svp", device="cpu")
    with pytest.warns(mlwfcalc.OutOfDomainWarning):
        result = model.predict(Atoms("O"), forces=True, domain="warn")
    assert result.fock.shape == (14, 14) and np.allclose(result.fock, result.fock.T)
    assert np.isfinite(result.energy) and np.array_equal(result.forces, np.zeros((1, 3)))


def test_lmax_too_small_for_basis_is_refused():
    from mlwfcalc.validation import InputError

    with pytest.raises(InputError, match="lmax=2 is too small"):
        HamiltonianModel(ModelConfig(**{**TINY, "lmax": 2}))


@pytest.mark.slow
def test_compiled_network_matches_eager(tiny_model_dir):
    """``load_model(..., compile=True)``: torch.compile(fullgraph=True) gives the eager F, energy and forces."""
    import mlwfcalc

    eager = mlwfcalc.load_model(tiny_model_dir, device="cpu")
    compiled = mlwfcalc.load_model(tiny_model_dir, device="cpu", compile=True)
    atoms = molecule("CH3CH2OH")
    a, b = eager.predict(atoms, forces=True), compiled.predict(atoms, forces=True)
    assert np.abs(a.fock - b.fock).max() < 1e-10
    assert abs(a.energy - b.energy) < 1e-10 and np.abs(a.forces - b.forces).max() < 1e-8


def _hcore(model, atoms, positions):
    mol = model.layout.make_mole(atoms.numbers, positions)
    return torch.as_tensor(mol.intor("int1e_kin") + mol.intor("int1e_nuc"))


def test_a_known_matrix_as_input_keeps_the_network_equivariant():
    """H0 as input (zeroth_step_input): its blocks enter as irreps through the heads' maps run backwards, which
    recover every block exactly; fed an exactly equivariant matrix (H_core here), F stays equivariant."""
    torch.manual_seed(0)
    model = HamiltonianModel(ModelConfig(**TINY, target="fock-h0", zeroth_step_input=True), dtype=torch.float64)
    plain = HamiltonianModel(ModelConfig(**TINY, target="fock-h0"), dtype=torch.float64)
    assert "zeroth_step_input" not in plain.config.to_dict() and model.config.to_dict()["zeroth_step_input"]
    atoms = molecule("CH3CH2OH")

    def fock(positions):
        batch = make_batch(model.layout, [torch.as_tensor(atoms.numbers)], [torch.as_tensor(positions)],
                           model.config.cutoff, [_hcore(model, atoms, positions)])
        with torch.no_grad():
            return model(batch)[0].numpy(), batch

    positions = atoms.positions / Bohr
    f0, batch = fock(positions)
    heads = model.heads
    coefficients = heads.irreps_of(batch.baseline, batch.block_type, batch.block_base, batch.nmax)
    where = batch.block_base[:, None] + heads.entry_row[batch.block_type] * batch.nmax + heads.entry_col[batch.block_type]
    values = coefficients.gather(1, heads.source[batch.block_type]) * heads.value[batch.block_type]
    rebuilt = torch.zeros(batch.baseline.numel(), dtype=torch.float64).index_add_(0, where.reshape(-1), values.reshape(-1))
    mask = torch.zeros_like(rebuilt).index_add_(0, where.reshape(-1), torch.ones_like(values.reshape(-1))) > 0
    assert mask.sum() == batch.baseline.numel()  # every entry is in some block, once per ordered pair
    assert torch.allclose(rebuilt, batch.baseline.reshape(-1), atol=1e-12)
    model.zeroth_input.fit_normalisation(heads, batch.baseline, batch.block_type, batch.block_base, batch.nmax)
    f0, _ = fock(positions)
    scale = np.abs(f0 - batch.baseline[0].numpy()).max()
    with torch.no_grad():  # the input matters: without it the prediction moves
        weight = model.zeroth_input.weight.clone()
        model.zeroth_input.weight.zero_()
        assert np.abs(fock(positions)[0] - f0).max() > 1e-3 * scale
        model.zeroth_input.weight.copy_(weight)
    for seed, improper in [(1, False), (2, True)]:
        rotation = random_rotation(seed, improper)
        f1, _ = fock(positions @ rotation.T + np.array([0.7, -1.3, 2.1]))
        d = model.layout.wigner_D(atoms.numbers, rotation)
        assert np.abs(f1 - d @ f0 @ d.T).max() / scale < 1e-8  # the integrals' own precision, amplified by the input scales
