"""The PySCF front end with the shipped water model: same converged energy, fewer cycles, any basis."""

import os
import warnings

import numpy as np
import pytest
from ase.build import molecule
from ase.io import write
from pyscf import dft, gto, scf

import mlwfcalc
from mlwfcalc.cli import main
from mlwfcalc.pyscf import TrajectoryGuess, guess_dm, warm_start
from mlwfcalc.validation import InputError


@pytest.fixture(scope="module")
def model():
    return mlwfcalc.load_model("water-pbe-def2svp", device="cpu")


def _water(basis="def2-svp", unit="Angstrom", cart=False):
    atoms = molecule("H2O")
    atoms.positions[1] += [0.04, -0.03, 0.02]  # away from the equilibrium the guesses know best
    positions = atoms.positions if unit == "Angstrom" else atoms.positions / 0.52917721092
    return gto.M(atom=list(zip(atoms.get_chemical_symbols(), positions)), basis=basis, unit=unit, cart=cart,
                 verbose=0)


def _run(mf, warm=None):
    mf.xc = "pbe" if hasattr(mf, "xc") else None
    mf.conv_tol = 1e-10
    if warm is not None:
        warm_start(mf, warm)
    mf.kernel()
    assert mf.converged
    return mf


def test_warm_start_converges_to_the_minao_answer_in_fewer_cycles(model):
    reference = _run(dft.RKS(_water()))
    warm = _run(dft.RKS(_water()), model)
    assert abs(warm.e_tot - reference.e_tot) < 1e-8
    assert warm.cycles < reference.cycles, (warm.cycles, reference.cycles)
    via_dm0 = dft.RKS(_water(), xc="pbe")
    via_dm0.conv_tol = 1e-10
    assert abs(via_dm0.kernel(dm0=guess_dm(via_dm0, model)) - reference.e_tot) < 1e-8


def test_guess_is_tagged_and_holds_the_electrons(model):
    mol = _water()
    dm = guess_dm(mol, model)
    assert dm.shape == (mol.nao, mol.nao) and hasattr(dm, "mo_coeff") and hasattr(dm, "mo_occ")
    assert abs(np.einsum("ij,ji->", dm, mol.intor("int1e_ovlp")) - 10) < 1e-10


def test_unrestricted_objects_get_alpha_and_beta(model):
    reference = _run(dft.RKS(_water()))
    mf = dft.UKS(_water(), xc="pbe")
    dm = guess_dm(mf, model)
    assert dm.shape == (2, 24, 24) and np.allclose(dm[0], dm[1])
    warm = _run(mf, model)
    assert abs(warm.e_tot - reference.e_tot) < 1e-8


@pytest.mark.parametrize("basis, unit, cart", [("def2-tzvp", "Angstrom", False), ("def2-svp", "Bohr", True)])
def test_other_basis_units_and_cartesian_functions(model, basis, unit, cart):
    reference = _run(dft.RKS(_water(basis, unit, cart)))
    mol = _water(basis, unit, cart)
    dm = guess_dm(mol, model)
    assert abs(np.einsum("ij,ji->", dm, mol.intor("int1e_ovlp")) - 10) < 1e-8  # projection keeps N
    warm = _run(dft.RKS(mol), model)
    assert abs(warm.e_tot - reference.e_tot) < 1e-8
    assert warm.cycles <= reference.cycles


def test_other_functional_warns_but_works(model):
    mf = scf.RHF(_water())
    with pytest.warns(UserWarning, match="trained on 'pbe'"):
        warm_start(mf, model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mf.kernel()
    assert mf.converged


def test_unknown_element_is_refused_and_an_uncovered_state_gets_pyscfs_guess(model):
    ammonia = gto.M(atom="N 0 0 0; H 0 0 1.0; H 0 1.0 0; H 1.0 0 0", basis="def2-svp", verbose=0)
    with pytest.raises(InputError, match="element.*N.*not supported"):
        warm_start(dft.RKS(ammonia, xc="pbe"), model)
    cation = gto.M(atom="O 0 0 0; H 0 0 0.97; H 0 0.95 -0.2", basis="def2-svp", charge=1, spin=1, verbose=0)
    mf = dft.UKS(cation, xc="pbe")
    with pytest.warns(UserWarning, match=r"charge 1, 2S = 1\): water-pbe-def2svp covers neutral closed shells only"):
        dm = guess_dm(mf, model)
    assert dm.shape == (2, cation.nao, cation.nao)
    assert np.allclose(dm, dft.UKS(cation, xc="pbe").get_init_guess(key="minao"))


def test_scf_command(tmp_path, capsys):
    path = tmp_path / "water.xyz"
    molecule("H2O").write(path)
    assert main(["scf", str(path), "--compare"]) == 0
    out = capsys.readouterr().out
    assert "cycles" in out and "minao" in out


def test_scf_command_along_a_trajectory_matches_minao_on_every_frame(tmp_path, capsys):
    path = tmp_path / "traj.xyz"
    frames = []
    for step in range(3):
        atoms = molecule("H2O")
        atoms.positions[1] += 0.01 * step
        frames.append(atoms)
    write(path, frames)
    assert main(["scf", f"{path}@:", "--compare"]) == 0
    out = capsys.readouterr().out
    assert "frame 2:" in out and "from the previous frame's density and the model" in out
    assert "3 frames: mean" in out and "ratio" in out
    differences = [float(line.rsplit("difference ", 1)[1].split()[0]) for line in out.splitlines() if "difference" in line]
    assert len(differences) == 3 and max(differences) < 1e-8


def test_scf_command_with_an_impossible_charge_and_spin_is_a_clean_error(tmp_path, capsys):
    """Water with charge 1 has 9 electrons: spin 0 is impossible; one line naming the fix, exit status 2."""
    path = tmp_path / "water.xyz"
    molecule("H2O").write(path)
    assert main(["scf", str(path), "--charge", "1"]) == 2
    err = capsys.readouterr().err
    assert "9 electrons" in err and "--spin 1" in err and "Traceback" not in err


def test_warm_start_prints_no_pyscf_warning(model, capfd):
    """``warm_start`` declares the method it replaces, so PySCF's sanity check says nothing at ``kernel()``."""
    from pyscf.lib import misc

    misc._warn_once_registry.clear()  # PySCF warns once per process: make this run see a fresh registry
    mf = dft.RKS(_water(), xc="pbe")
    mf.verbose = 4  # PySCF runs its sanity check when it dumps the flags
    with open(os.devnull, "w") as quiet:
        mf.stdout = quiet
        warm_start(mf, model)
        mf.kernel()
    assert "Overwritten attributes" not in capfd.readouterr().err


def test_trajectory_guess_along_steps_gives_the_minao_answers(model):
    guesser = TrajectoryGuess(model)
    mol = _water()
    first = guesser.guess(mol)
    assert np.allclose(first, guess_dm(mol, model))  # no history yet: the model's density
    for step in range(3):
        mol = _water()
        mol.set_geom_(mol.atom_coords() + 0.01 * step * np.array([[0, 0, 0], [1, -1, 0], [0, 1, 1]]), unit="Bohr")
        reference = _run(dft.RKS(mol))
        mf = dft.RKS(mol, xc="pbe")
        mf.conv_tol = 1e-10
        guess = guesser.guess(mf)
        overlap = mol.intor("int1e_ovlp")
        assert abs(np.trace(guess @ overlap) - 10) < 1e-10  # exactly N electrons
        assert np.allclose(guess @ overlap @ guess, 2 * guess, atol=1e-10)  # idempotent
        mf.kernel(dm0=guess)
        guesser.update(mf)
        assert mf.converged and abs(mf.e_tot - reference.e_tot) < 1e-8
    # at the same geometry again, the model's change is zero: the guess is the converged density
    assert np.allclose(guesser.guess(mol), mf.make_rdm1(), atol=1e-8)


def test_trajectory_guess_starts_over_after_another_molecule_or_an_unconverged_scf(model):
    guesser = TrajectoryGuess(model)
    guesser.run(_run(dft.RKS(_water())))
    other = _water(basis="sto-3g")
    assert np.allclose(guesser.guess(other), guess_dm(other, model))  # another basis: no history used
    moved = _water()
    moved.set_geom_(moved.atom_coords() * 1.05, unit="Bohr")
    unconverged = dft.RKS(moved, xc="pbe")
    unconverged.max_cycle, unconverged.conv_tol = 1, 1e-12
    with pytest.warns(UserWarning, match="did not converge"):
        guesser.run(unconverged)
    assert np.allclose(guesser.guess(_water()), guess_dm(_water(), model))
