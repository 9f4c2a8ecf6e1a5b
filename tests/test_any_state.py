"""``model="auto"`` and the states no model covers: the exact SCF answer from PySCF's own guess.

Every energy is checked against a plain PySCF SCF at the same settings (PBE/def2-SVP, grids level 3,
conv_tol 1e-9, minao guess): the calculator must return exactly PySCF's answer, RKS for a closed shell
and UKS for 2S > 0, for charged and open-shell molecules that the shipped models (neutral closed shells)
do not cover, and for molecules no shipped model covers at all.
"""

import warnings

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.units import Hartree
from pyscf import dft, gto

import mlwfcalc
from mlwfcalc import MLWFCalculator, OutOfDomainError
from mlwfcalc.cli import main
from mlwfcalc.notices import forget
from mlwfcalc.pyscf import TrajectoryGuess, guess_dm, warm_start
from mlwfcalc.validation import InputError

ACETATE = Atoms("CCOOHHH", positions=[[0, 0, 0], [1.52, 0, 0], [2.1, 1.1, 0], [2.1, -1.1, 0], [-0.4, 1.0, 0],
                                      [-0.4, -0.5, 0.9], [-0.4, -0.5, -0.9]])


def _pyscf(atoms, charge=0, spin=0):
    """Plain PySCF at the calculator's settings: (energy Hartree, forces Hartree/Bohr)."""
    mol = gto.M(atom=list(zip(atoms.get_chemical_symbols(), atoms.positions)), basis="def2-svp", charge=charge,
                spin=spin, verbose=0)
    mf = (dft.UKS if spin else dft.RKS)(mol, xc="pbe")
    mf.grids.level, mf.conv_tol = 3, 1e-9
    mf.kernel()
    assert mf.converged
    return mf.e_tot, -mf.nuc_grad_method().kernel()


def _exact(atoms, **kwargs):
    atoms = atoms.copy()
    atoms.calc = MLWFCalculator(mode="scf", **kwargs)
    with pytest.warns(UserWarning, match="minao"):
        forget()
        energy = atoms.get_potential_energy() / Hartree
    return atoms, energy


def test_radical_uks_equals_pyscf():
    radical, energy = _exact(molecule("CH3"), spin=1)
    reference, forces = _pyscf(radical, spin=1)
    assert abs(energy - reference) < 1e-8
    assert np.allclose(radical.get_forces() / (Hartree / 0.52917721092), forces, atol=1e-6)
    calc = radical.calc
    assert calc.model.name == "organic-pbe-def2svp"  # covers CH3's composition, not its spin
    assert calc.get_number_of_spins() == 2 and calc.get_occupation_numbers(spin=0).sum() == 5
    assert calc.get_occupation_numbers(spin=1).sum() == 4
    homo, lumo = calc.get_homo_lumo()
    assert homo < lumo


def test_hydroxide_rks_equals_pyscf():
    hydroxide, energy = _exact(Atoms("OH", positions=[[0, 0, 0], [0, 0, 0.97]]), charge=-1)
    assert abs(energy - _pyscf(hydroxide, charge=-1)[0]) < 1e-8
    assert hydroxide.calc.get_number_of_spins() == 1


@pytest.mark.slow  # two SCFs of a 7-atom anion: about 30 s on 2 cores
def test_acetate_rks_equals_pyscf():
    acetate, energy = _exact(ACETATE, charge=-1)
    assert abs(energy - _pyscf(acetate, charge=-1)[0]) < 1e-8


def test_molecule_no_model_covers_is_exact_in_mode_scf_and_refused_elsewhere():
    h2s = molecule("SH2")
    h2s, energy = _exact(h2s)
    assert h2s.calc.model is None  # no shipped model has S: PBE/def2-SVP from minao
    assert abs(energy - _pyscf(h2s)[0]) < 1e-8
    other = molecule("SH2")
    other.calc = MLWFCalculator(mode="ml")
    with pytest.raises(OutOfDomainError, match="no shipped model covers H2S: the nearest is organic-pbe-def2svp"):
        other.get_potential_energy()


def test_model_only_modes_refuse_an_uncovered_state_clearly():
    for mode, refusal in (("harris", "total charge -1 is not supported.*mode='scf'"),
                          ("variational", "total charge -1 is not supported.*mode='scf'"),
                          ("ml", "no energy head, which mode='ml' needs: use mode='harris', 'variational' or 'scf'")):
        ion = Atoms("OH", positions=[[0, 0, 0], [0, 0, 0.97]], calculator=MLWFCalculator(mode=mode, charge=-1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the auto choice and the preliminary mark
            with pytest.raises(InputError, match=refusal):  # the chemical-space model has no energy head
                ion.get_potential_energy()
    odd = molecule("H2O")
    odd.calc = MLWFCalculator(mode="scf", spin=0, charge=1)
    with pytest.raises(InputError, match="cannot have 2S = 0: give spin 1"):
        odd.get_potential_energy()


def test_auto_chooses_the_covering_model_once():
    calc = MLWFCalculator()
    with pytest.raises(InputError, match="chosen at the first calculation"):
        calc.model
    benzene = molecule("C6H6")
    benzene.calc = calc
    forget()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        benzene.get_potential_energy()
    assert calc.model.name == "organic-pbe-def2svp"
    said = [str(w.message) for w in caught]
    assert "model='auto': organic-pbe-def2svp for C6H6" in said
    assert all(len(m) < 200 and "\n" not in m for m in said), said  # one line each
    assert all(w.filename == __file__ for w in caught)  # shown at the user's line, not an internal one
    water = molecule("H2O")
    water.calc = MLWFCalculator(mode="ml")
    water.get_potential_energy()
    assert water.calc.model.name == "water-pbe-def2svp"  # the per-molecule model before the chemical-space one
    assert mlwfcalc.load_model("auto", atoms=molecule("CH3CH2OH"), device="cpu").name == "ethanol-pbe-def2svp"
    with pytest.raises(InputError, match=r"atoms=atoms"):
        mlwfcalc.load_model("auto")


def test_pyscf_front_end_auto_and_uncovered_states():
    water = gto.M(atom="O 0 0 0; H 0 0.76 0.59; H 0 -0.76 0.59", basis="def2-svp", verbose=0)
    mf = warm_start(dft.RKS(water, xc="pbe"))  # auto: the water model
    mf.kernel()
    assert mf.converged and "get_init_guess" in vars(mf)  # the model's warm start
    radical = gto.M(atom=list(zip("CHHH", molecule("CH3").positions)), basis="def2-svp", spin=1, verbose=0)
    mf = dft.UKS(radical, xc="pbe")
    mf.grids.level, mf.conv_tol, mf.verbose = 3, 1e-9, 0
    forget()
    with pytest.warns(UserWarning, match="minao"):
        dm = guess_dm(mf)
    assert dm.shape == (2, radical.nao, radical.nao)
    warm_start(mf)
    assert "get_init_guess" not in vars(mf)  # left with PySCF's own guess
    guesser = TrajectoryGuess()
    energy = guesser.run(mf)
    assert guesser.model is None and not guesser.used_history
    assert abs(energy - _pyscf(Atoms("CH3", positions=molecule("CH3").positions), spin=1)[0]) < 1e-8


def test_scf_command_any_charge_and_spin(tmp_path, capsys):
    path = tmp_path / "ch3.xyz"
    molecule("CH3").write(path)
    forget()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["scf", str(path), "--spin", "1"]) == 0
    out = capsys.readouterr().out
    energy = float(out.split("E = ")[1].split()[0])
    assert "UKS" in out and abs(energy - _pyscf(molecule("CH3"), spin=1)[0]) < 1e-8
    assert main(["scf", str(path), "--spin", "0"]) == 2
    assert "give spin 1" in capsys.readouterr().err


def test_a_notice_from_stdin_or_dash_c_warns_instead_of_crashing():
    import subprocess
    import sys

    code = "import mlwfcalc\nprint(mlwfcalc.load_model('organic-pbe-def2svp', device='cpu').name)\n"
    for args, stdin in (([sys.executable, "-"], code), ([sys.executable, "-c", code], None)):
        done = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert "organic-pbe-def2svp" in done.stdout and "preliminary" in done.stderr
