"""The electronic layer against PySCF: orbitals, density matrix, dipole, charges, cube files, band energy,
and the check for spurious orbitals."""

import json

import numpy as np
import pytest
import torch
from ase.build import molecule
from ase.io.cube import read_cube_data
from ase.units import Bohr
from pyscf import dft
from pyscf.scf.hf import mulliken_pop

from mlwfcalc.basis import BasisLayout
from mlwfcalc.electronic import (NEAR_NULL_OVERLAP, band_energy, dipole_moment, electron_density, lowdin_charges,
                                 mulliken_charges, solve_orbitals, write_density_cube, write_orbital_cube)
from mlwfcalc.io import MODELS_DIR


@pytest.fixture(scope="module")
def water_scf():
    atoms = molecule("H2O")
    mol = BasisLayout("def2-svp", atoms.numbers).make_mole(atoms.numbers, atoms.positions / Bohr)
    mf = dft.RKS(mol, xc="pbe")
    mf.conv_tol, mf.verbose = 1e-11, 0
    mf.kernel()
    assert mf.converged
    return mf


def _tensors(mf):
    return torch.as_tensor(mf.get_fock()), torch.as_tensor(mf.get_ovlp())


def test_orbitals_and_density_from_the_exact_fock_reproduce_pyscf(water_scf):
    fock, overlap = _tensors(water_scf)
    orbitals = solve_orbitals(fock, overlap, water_scf.mol.nelectron)
    # PySCF's own answer for the same F (mf.mo_energy belongs to the previous cycle's Fock)
    mo_energy, mo_coeff = water_scf.eig(fock.numpy(), overlap.numpy())
    mo_occ = water_scf.get_occ(mo_energy, mo_coeff)
    assert np.abs(orbitals.energies.numpy() - mo_energy).max() < 1e-8
    assert np.abs(orbitals.density_matrix().numpy() - water_scf.make_rdm1(mo_coeff, mo_occ)).max() < 1e-8
    assert np.array_equal(orbitals.occupations.numpy(), mo_occ)


def test_dipole_and_charges_match_pyscf(water_scf):
    mol = water_scf.mol
    fock, overlap = _tensors(water_scf)
    density = torch.as_tensor(water_scf.make_rdm1())
    reference_dipole = water_scf.dip_moment(unit="AU", verbose=0)
    assert np.abs(dipole_moment(mol, density).numpy() - reference_dipole).max() < 1e-8
    assert np.linalg.norm(reference_dipole) > 0.1  # water has a dipole: the test is not trivially zero
    _, reference_mulliken = water_scf.mulliken_pop(verbose=0)
    assert np.abs(mulliken_charges(mol, density, overlap).numpy() - reference_mulliken).max() < 1e-10
    # Lowdin charges are Mulliken charges of S^1/2 P S^1/2 in an orthonormal basis
    s, u = np.linalg.eigh(overlap.numpy())
    half = (u * np.sqrt(s)) @ u.T
    _, reference_lowdin = mulliken_pop(mol, half @ density.numpy() @ half, s=np.eye(mol.nao), verbose=0)
    lowdin = lowdin_charges(mol, density, overlap).numpy()
    assert np.abs(lowdin - reference_lowdin).max() < 1e-10
    assert abs(lowdin.sum()) < 1e-8 and lowdin[0] < 0  # neutral, oxygen negative


def test_density_cube_integrates_to_the_electron_count(water_scf, tmp_path):
    path = tmp_path / "density.cube"
    write_density_cube(water_scf.mol, water_scf.make_rdm1(), path)
    data, atoms = read_cube_data(str(path))
    assert len(atoms) == 3
    voxel = abs(np.linalg.det(atoms.cell / Bohr)) / data.size
    assert abs(data.sum() * voxel - 10) < 1e-2
    homo = tmp_path / "homo.cube"
    write_orbital_cube(water_scf.mol, water_scf.mo_coeff, 4, homo)
    orbital, _ = read_cube_data(str(homo))
    assert abs((orbital**2).sum() * voxel - 1) < 1e-2  # normalised orbital
    points = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 30.0]])
    rho = electron_density(water_scf.mol, water_scf.make_rdm1(), points + water_scf.mol.atom_coord(0))
    assert rho[0] > 100 and rho[1] < 1e-12  # at the oxygen nucleus, and far away


def test_band_energy_gradients_are_p_and_minus_w(water_scf):
    fock, overlap = _tensors(water_scf)
    fock.requires_grad_(True)
    overlap.requires_grad_(True)
    energy = band_energy(fock, overlap, 10)
    mo_energy, _ = water_scf.eig(fock.detach().numpy(), overlap.detach().numpy())
    assert float(energy.detach()) == pytest.approx(2 * mo_energy[:5].sum(), abs=1e-9)
    energy.backward()
    rng = np.random.default_rng(0)
    for matrix, grad in [(fock, fock.grad), (overlap, overlap.grad)]:
        direction = torch.as_tensor(rng.standard_normal(matrix.shape))
        direction = 1e-3 * (direction + direction.T) / 2
        h = 1e-4
        with torch.no_grad():
            args = [fock, overlap]
            which = 0 if matrix is fock else 1
            plus, minus = list(args), list(args)
            plus[which] = matrix + h * direction
            minus[which] = matrix - h * direction
            numeric = (band_energy(*plus, 10) - band_energy(*minus, 10)) / (2 * h)
        assert float((grad * direction).sum()) == pytest.approx(float(numeric), rel=1e-6, abs=1e-12)


def test_band_energy_backward_is_finite_at_degenerate_eigenvalues():
    # three-fold degenerate occupied level and a degenerate pair across the gap: eigh's backward gives NaN/inf
    fock = torch.diag(torch.tensor([-1.0, -0.5, -0.5, -0.5, 0.3, 0.3], dtype=torch.float64)).requires_grad_(True)
    overlap = torch.eye(6, dtype=torch.float64, requires_grad=True)
    energy = band_energy(fock, overlap, 8)
    energy.backward()
    assert float(energy.detach()) == pytest.approx(2 * (-1.0 - 1.5))
    assert torch.isfinite(fock.grad).all() and torch.isfinite(overlap.grad).all()
    assert torch.allclose(fock.grad, torch.diag(torch.tensor([2.0, 2, 2, 2, 0, 0], dtype=torch.float64)))


def test_overlap_derivative_matches_finite_differences():
    from mlwfcalc.electronic import overlap_matrix

    atoms = molecule("CH3CH2OH")
    layout = BasisLayout("def2-svp", atoms.numbers)
    positions = torch.as_tensor(atoms.positions / Bohr, dtype=torch.float64)
    weights = torch.as_tensor(np.random.default_rng(1).standard_normal((72, 72)))  # not symmetric on purpose

    def energy(p):
        return (overlap_matrix(layout.make_mole(atoms.numbers, p.detach().numpy()), p) * weights).sum()

    p = positions.clone().requires_grad_(True)
    energy(p).backward()
    h = 1e-4
    for atom, axis in [(0, 0), (2, 1), (5, 2), (8, 0)]:
        plus, minus = positions.clone(), positions.clone()
        plus[atom, axis] += h
        minus[atom, axis] -= h
        numeric = (energy(plus) - energy(minus)) / (2 * h)
        assert float(p.grad[atom, axis]) == pytest.approx(float(numeric), rel=1e-6, abs=1e-8)
    assert abs(float(p.grad.sum())) < 1e-9  # translation invariance of S


def test_smooth_density_matrix_matches_eigh_and_has_second_derivatives(water_scf):
    from mlwfcalc.electronic import density_matrix

    fock, overlap = _tensors(water_scf)
    reference = solve_orbitals(fock, overlap, 10).density_matrix()
    assert float((density_matrix(fock, overlap, 10) - reference).abs().max()) < 1e-12
    # tr(P F) differentiated through the iteration gives the Hellmann-Feynman gradients P and -W
    f = fock.clone().requires_grad_(True)
    s = overlap.clone().requires_grad_(True)
    (density_matrix(f, s, 10) * f).sum().backward()
    f_hf, s_hf = fock.clone().requires_grad_(True), overlap.clone().requires_grad_(True)
    band_energy(f_hf, s_hf, 10).backward()
    assert float((f.grad - f_hf.grad).abs().max()) < 1e-9
    assert float((s.grad - s_hf.grad).abs().max()) < 1e-8
    # second derivatives exist and are right where eigenvalues are degenerate
    def smooth(fo, ov):
        fo, ov = (fo + fo.T) / 2, (ov + ov.T) / 2
        return density_matrix(fo, ov, 4)

    degenerate = torch.diag(torch.tensor([-1.0, -1.0, 0.5, 0.5, 0.9], dtype=torch.float64)).requires_grad_(True)
    ov = (torch.eye(5, dtype=torch.float64) + 0.05 * torch.ones(5, 5, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(smooth, (degenerate, ov), atol=1e-6)
    assert torch.autograd.gradgradcheck(smooth, (degenerate, ov), atol=1e-5)


@pytest.fixture(scope="module")
def malondialdehyde_reference():
    """Mole, PySCF PBE/def2-SVP F and overlap of the malondialdehyde model's reference geometry (float64).
    def2-SVP on malondialdehyde is nearly linearly dependent (smallest overlap eigenvalue about 0.002)."""
    reference = json.loads((MODELS_DIR / "malondialdehyde-pbe-def2svp" / "reference.json").read_text())
    numbers = np.array(reference["numbers"])
    mol = BasisLayout("def2-svp", numbers).make_mole(numbers, np.array(reference["positions_angstrom"]) / Bohr)
    return mol, torch.as_tensor(np.array(reference["fock_hartree"])), torch.as_tensor(mol.intor("int1e_ovlp"))


def test_converged_orbitals_carry_no_weight_on_the_near_linear_dependencies(malondialdehyde_reference):
    mol, fock, overlap = malondialdehyde_reference
    s = torch.linalg.eigvalsh(overlap)
    n_near_null = int((s < NEAR_NULL_OVERLAP).sum())
    assert n_near_null >= 1  # the basis has near-linear dependencies: the check has something to look at
    orbitals = solve_orbitals(fock, overlap, mol.nelectron)
    # the weights are the squared components of an orthogonal matrix: over all orbitals they sum to the count
    assert abs(float(orbitals.near_null_weight.sum()) - n_near_null) < 1e-8
    assert float(orbitals.near_null_weight[:orbitals.n_occupied].max()) < 1e-3
    assert orbitals.spurious_occupied() == []


def test_a_tiny_f_error_along_a_near_linear_dependency_makes_a_spurious_occupied_orbital(malondialdehyde_reference):
    """An AO-basis F error of a few micro-Hartree (MAE) along the overlap's smallest eigenvector is magnified
    by 1/s_min (about 500x) and pulls an orbital of the near-null space below the LUMO; the same error along
    the largest eigenvector changes the orbital energies by micro-Hartree. The check tells them apart."""
    mol, fock, overlap = malondialdehyde_reference
    s, u = torch.linalg.eigh(overlap)
    reference = solve_orbitals(fock, overlap, mol.nelectron)
    n = reference.n_occupied
    for k, spurious in ((0, True), (-1, False)):
        error = -0.003 * torch.outer(u[:, k], u[:, k])
        assert float(error.abs().mean()) < 2e-5  # far below any model's F MAE
        orbitals = solve_orbitals(fock + error, overlap, mol.nelectron)
        shift = float((orbitals.energies[:n] - reference.energies[:n]).abs().mean())
        assert bool(orbitals.spurious_occupied()) == spurious
        assert (shift > 1e-3) == spurious  # spurious: the occupied spectrum is wrong by milli-Hartree


def test_the_well_conditioned_subspace_drops_the_spurious_orbital_and_keeps_the_converged_ones(
        malondialdehyde_reference):
    """Solved in the overlap eigenvectors with eigenvalue >= 3e-3, the F error along the smallest one (which made
    a spurious occupied orbital above) is gone entirely, and the converged orbitals barely move."""
    from mlwfcalc.electronic import LinearDependencyInBatch

    mol, fock, overlap = malondialdehyde_reference
    s, u = torch.linalg.eigh(overlap)
    subspace = 3e-3
    dropped = int((s < subspace).sum())
    assert dropped >= 1 and float(s[0]) < subspace  # the test drops something
    full = solve_orbitals(fock, overlap, mol.nelectron)
    kept = solve_orbitals(fock, overlap, mol.nelectron, subspace=subspace)
    n = full.n_occupied
    assert kept.energies.shape == (mol.nao - dropped,) and kept.coefficients.shape == (mol.nao, mol.nao - dropped)
    c = kept.coefficients
    assert torch.allclose(c.T @ overlap @ c, torch.eye(mol.nao - dropped, dtype=c.dtype), atol=1e-10)
    # the price on converged orbitals: their small weight on the dropped directions
    assert float((kept.energies[:n] - full.energies[:n]).abs().max()) < 2e-4
    dipole_change = (dipole_moment(mol, kept.density_matrix()) - dipole_moment(mol, full.density_matrix())).norm()
    assert float(dipole_change) < 0.02  # atomic units (0.05 D)
    # an error along a dropped direction no longer reaches the orbitals at all
    error = -0.003 * torch.outer(u[:, 0], u[:, 0])
    assert solve_orbitals(fock + error, overlap, mol.nelectron).spurious_occupied()  # as in the test above
    perturbed = solve_orbitals(fock + error, overlap, mol.nelectron, subspace=subspace)
    assert perturbed.spurious_occupied() == []
    assert torch.allclose(perturbed.density_matrix(), kept.density_matrix(), atol=1e-10)
    # a batch solves as its molecules do alone; one that would keep different counts asks to be split
    batch = solve_orbitals(torch.stack([fock, fock + error]), torch.stack([overlap, overlap]), mol.nelectron,
                           subspace=subspace)
    assert torch.allclose(batch.energies[1], perturbed.energies, atol=1e-10)
    conditioned = overlap + 2 * subspace * torch.eye(mol.nao, dtype=overlap.dtype)  # keeps every direction
    with pytest.raises(LinearDependencyInBatch, match="different numbers"):
        solve_orbitals(torch.stack([fock, fock]), torch.stack([overlap, conditioned]), mol.nelectron, subspace=subspace)
    with pytest.raises(ValueError, match="too few"):
        solve_orbitals(fock, overlap, mol.nelectron, subspace=float(s[-n]))  # n directions: no LUMO
