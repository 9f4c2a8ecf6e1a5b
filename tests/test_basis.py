"""The AO conventions: layouts, index maps, and Wigner matrices that map PySCF references onto each other."""

import numpy as np
import pytest
from ase.build import molecule
from ase.units import Bohr
from pyscf import dft

from mlwfcalc.basis import BasisLayout, ElementLayout
from mlwfcalc.validation import InputError

from conftest import random_rotation


def test_def2svp_layout_of_water():
    layout = BasisLayout("def2-SVP", ["O", "H"])
    assert layout.element("O").shells == (0, 0, 0, 1, 1, 2)
    assert layout.element(1).shells == (0, 0, 1)
    assert str(layout.element("O").irreps) == "1x0e+1x0e+1x0e+1x1o+1x1o+1x2e"
    assert layout.nao([8, 1, 1]) == 24
    assert layout.ao_slices([8, 1, 1]) == [slice(0, 14), slice(14, 19), slice(19, 24)]
    assert layout.max_l == 2


def test_p_shells_are_reordered_to_m_order_and_back():
    layout = BasisLayout("def2-svp", [1, 8])
    h = layout.element("H")
    assert h.pyscf_to_irreps.tolist() == [0, 1, 3, 4, 2]  # s, s, (py, pz, px)
    index = layout.pyscf_to_irreps_index([8, 1, 1])
    back = layout.irreps_to_pyscf_index([8, 1, 1])
    vector = np.arange(24.0)
    assert np.array_equal(vector[index][back], vector)
    assert sorted(index.tolist()) == list(range(24))


def test_unknown_element_for_basis_is_refused():
    with pytest.raises(InputError, match="no functions for element"):
        BasisLayout("6-31g", ["H", "Rn"])
    with pytest.raises(InputError, match="unknown element"):
        BasisLayout("def2-svp", ["Xx"])
    layout = BasisLayout("def2-svp", ["H", "O"])
    with pytest.raises(InputError, match="not covered"):
        layout.element("C")


def _mole(layout, atoms, rotation=None):
    positions = atoms.positions / Bohr
    if rotation is not None:
        positions = positions @ rotation.T
    return layout.make_mole(atoms.numbers, positions)


@pytest.mark.parametrize("basis", ["def2-svp", "def2-tzvp"])  # def2-TZVP adds f shells on O
@pytest.mark.parametrize("improper", [False, True])
def test_overlap_is_equivariant(water, basis, improper):
    layout = BasisLayout(basis, water.numbers)
    rotation = random_rotation(7, improper)
    s0 = _mole(layout, water).intor("int1e_ovlp")
    s1 = _mole(layout, water, rotation).intor("int1e_ovlp")
    d = layout.wigner_D(water.numbers, rotation)
    assert np.allclose(d @ d.T, np.eye(len(d)), atol=1e-12)
    assert np.abs(s1 - d @ s0 @ d.T).max() < 1e-10


def _kohn_sham_matrix(mol):
    # Lebedev grids do not rotate with the molecule: at level 3 ethanol shows 1.0e-5 Hartree of pure
    # grid error, at level 4 5e-7 (a convention error would be O(0.1)).
    mf = dft.RKS(mol, xc="pbe")
    mf.grids.level = 4
    mf.conv_tol = 1e-10
    mf.verbose = 0
    mf.kernel()
    assert mf.converged
    return mf.get_fock()


@pytest.mark.parametrize("name", ["H2O", "CH3CH2OH"])
def test_kohn_sham_matrix_is_equivariant_under_rotation_and_inversion(name):
    atoms = molecule(name)
    layout = BasisLayout("def2-svp", atoms.numbers)
    f0 = _kohn_sham_matrix(_mole(layout, atoms))
    for seed, improper in [(3, False), (4, True)]:
        rotation = random_rotation(seed, improper)
        f1 = _kohn_sham_matrix(_mole(layout, atoms, rotation))
        d = layout.wigner_D(atoms.numbers, rotation)
        assert np.abs(f1 - d @ f0 @ d.T).max() < 1e-5  # DFT grid error only
        # and the map is not trivially satisfied: F itself changes
        assert np.abs(f1 - f0).max() > 1e-2


def test_element_layout_counts():
    carbon = ElementLayout(number=6, shells=(0, 0, 0, 1, 1, 2))
    assert carbon.nao == 14 and carbon.shell_label() == "3s2p1d" and carbon.symbol == "C"
