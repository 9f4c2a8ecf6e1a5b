"""Training domain and uncertainty: refusals, the expert opt-out, and an uncertainty that rises off the data."""

import json
import shutil
import warnings

import numpy as np
import pytest
from ase.build import molecule
from ase.collections import s22

import mlwfcalc
from mlwfcalc import MLWFCalculator, OutOfDomainError, OutOfDomainWarning
from mlwfcalc.cli import main
from mlwfcalc.domain import TrainingDomain, enforce

from conftest import random_rotation


@pytest.fixture(scope="module")
def water_model():
    return mlwfcalc.load_model("water-pbe-def2svp", device="cpu")


@pytest.fixture(scope="module")
def ethanol_model():
    return mlwfcalc.load_model("ethanol-pbe-def2svp", device="cpu")


def stretched_water(oh_ang: float):
    """Water with its first O-H bond set to ``oh_ang`` Angstrom (angle and the other bond unchanged)."""
    atoms = molecule("H2O")
    bond = atoms.positions[1] - atoms.positions[0]
    atoms.positions[1] = atoms.positions[0] + bond / np.linalg.norm(bond) * oh_ang
    return atoms


def water_cluster(n: int):
    """``n`` waters 3 A apart along x."""
    atoms = molecule("H2O")
    for k in range(1, n):
        other = molecule("H2O")
        other.positions += [3.0 * k, 0.0, 0.0]
        atoms += other
    return atoms


@pytest.mark.parametrize("name, atoms, outside", [
    ("water dimer (s22)", s22["Water_dimer"], "formula H4O2"),
    ("cluster of four waters", water_cluster(4), "formula H8O4"),
    ("H2", molecule("H2"), "formula H2"),
    ("lone O atom", molecule("O"), "formula O"),
    ("stretched O-H (1.3 A)", stretched_water(1.3), "H-O distance of 1.30 A"),
    ("compressed O-H (0.7 A)", stretched_water(0.7), "H-O distance of 0.70 A"),
])
def test_water_model_refuses_what_it_never_saw(water_model, name, atoms, outside):
    with pytest.raises(OutOfDomainError, match=outside) as err:
        water_model.predict(atoms)
    assert isinstance(err.value, mlwfcalc.InputError)
    assert "domain='warn'" in str(err.value)  # the message names the opt-out


def test_the_refusal_names_the_model_that_fits(water_model, ethanol_model):
    with pytest.raises(OutOfDomainError, match="trained for H2O: (.*, )?water-pbe-def2svp"):
        ethanol_model.predict(molecule("H2O"))
    with pytest.raises(OutOfDomainError, match="trained for C2H6O: ethanol-pbe-def2svp"):
        water_model.predict(molecule("CH3CH2OH"))


def test_a_stretched_bond_of_ethanol_is_refused(ethanol_model):
    atoms = molecule("CH3CH2OH")
    ethanol_model.predict(atoms)  # the equilibrium geometry is inside
    o = 2
    h = min((i for i, z in enumerate(atoms.numbers) if z == 1), key=lambda i: atoms.get_distance(o, i))  # hydroxyl H

    def stretched(length):
        moved = atoms.copy()
        bond = moved.positions[h] - moved.positions[o]
        moved.positions[h] = moved.positions[o] + length * bond / np.linalg.norm(bond)
        return moved

    assert ethanol_model.check_atoms(stretched(1.25)) == []  # the normal-mode data reach 1.32 A
    reasons = ethanol_model.check_atoms(stretched(2.1), domain="warn")
    assert any(r.startswith("an O atom's distance to its nearest H of 2.") for r in reasons), reasons
    with pytest.raises(OutOfDomainError, match="outside the training domain of ethanol-pbe-def2svp"):
        ethanol_model.predict(stretched(2.1))


def test_domain_warn_computes_with_a_warning(water_model):
    dimer = s22["Water_dimer"]
    with pytest.warns(OutOfDomainWarning, match="H4O2 is outside"):
        result = water_model.predict(dimer, domain="warn")
    assert "formula H4O2" in result.outside_domain[0] and np.isfinite(result.energy)
    with pytest.raises(mlwfcalc.InputError, match="domain='maybe'"):
        water_model.predict(dimer, domain="maybe")


def test_calculator_refuses_and_warns_once_with_domain_warn(water_model):
    dimer = s22["Water_dimer"].copy()
    dimer.calc = MLWFCalculator(water_model)
    with pytest.raises(OutOfDomainError):
        dimer.get_potential_energy()
    calc = MLWFCalculator(water_model, domain="warn")
    dimer.calc = calc
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dimer.get_potential_energy()
        dimer.positions[0] += 0.01
        dimer.get_potential_energy()
    assert calc.calls == 2 and calc.uncertain_calls == 2  # domain="warn" warns past the hard limit too
    warned = [str(w.message) for w in caught if issubclass(w.category, OutOfDomainWarning)]
    assert len(warned) == 2 and sum("hard limit" in w for w in warned) == 1  # each kind once


def test_pyscf_guess_refuses_outside_the_domain(water_model):
    from pyscf import gto

    from mlwfcalc.pyscf import guess_dm

    dimer = s22["Water_dimer"]
    mol = gto.M(atom=[(s, p) for s, p in zip(dimer.get_chemical_symbols(), dimer.positions)], basis="def2-svp",
                verbose=0)
    with pytest.raises(OutOfDomainError):
        guess_dm(mol, water_model)
    with pytest.warns(OutOfDomainWarning):
        assert guess_dm(mol, water_model, domain="warn").shape == (mol.nao, mol.nao)


def test_command_line_refuses_and_opts_out(tmp_path, capsys):
    path = tmp_path / "dimer.xyz"
    s22["Water_dimer"].write(path)
    assert main(["predict", str(path)]) == 2
    assert "outside the training domain" in capsys.readouterr().err
    with pytest.warns(OutOfDomainWarning):
        assert main(["predict", str(path), "--domain", "warn"]) == 0
    assert "uncertainty" in capsys.readouterr().out


def test_uncertainty_rises_as_a_bond_stretches(water_model):
    """Equilibrium, then step by step to the edge of the domain: a strictly rising uncertainty."""
    values = [water_model.predict(stretched_water(d), on_uncertain="warn").uncertainty
              for d in (0.97, 1.02, 1.07, 1.12, 1.17)]
    assert all(b > a for a, b in zip(values, values[1:])), values
    assert values[0] < water_model.uncertainty_threshold < values[-1]


def test_uncertainty_is_invariant_under_rotation_and_inversion(water_model, ethanol_model):
    for model, atoms in ((water_model, stretched_water(1.05)), (ethanol_model, molecule("CH3CH2OH"))):
        reference = model.predict(atoms).uncertainty
        for seed, improper in ((1, False), (2, True)):
            turned = atoms.copy()
            turned.positions = atoms.positions @ random_rotation(seed, improper).T + [1.0, -2.0, 0.5]
            assert model.predict(turned).uncertainty == pytest.approx(reference, rel=1e-4)


def test_calculator_reports_uncertainty_and_flags_once(water_model):
    from ase.units import Hartree

    calc = MLWFCalculator(water_model, on_uncertain="warn")  # 1.15-1.16 A pass the hard limit too
    atoms = stretched_water(0.98)
    atoms.calc = calc
    atoms.get_potential_energy()
    assert calc.get_property("uncertainty") == pytest.approx(calc.prediction.uncertainty * Hartree)
    assert calc.results["uncertainty_above_threshold"] is False and calc.flagged_calls == 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for d in (1.15, 1.16):
            atoms.set_positions(stretched_water(d).positions)
            atoms.get_forces()
    assert calc.results["uncertainty_above_threshold"] is True and calc.flagged_calls == 2
    assert sum("passes the threshold" in str(w.message) for w in caught) == 1
    assert calc.uncertain_calls == 2 and sum("hard limit" in str(w.message) for w in caught) == 1


def test_model_without_a_domain_loads_with_a_warning(tmp_path):
    directory = tmp_path / "old"
    shutil.copytree(mlwfcalc.io.MODELS_DIR / "water-pbe-def2svp", directory)
    config = json.loads((directory / "config.json").read_text())
    del config["domain"], config["uncertainty"]
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.warns(UserWarning, match="no recorded training domain"):
        model = mlwfcalc.load_model(directory, device="cpu")
    result = model.predict(s22["Water_dimer"])  # unknown domain: nothing refused, no uncertainty
    assert result.uncertainty is None and result.outside_domain == []


def test_fit_domain_records_what_the_data_hold(water_db, tmp_path, capsys):
    """`mlwfcalc fit-domain` on a model and its data: the formulas, sizes and distance shells seen, and a
    calibrated uncertainty that survives a save and load."""
    directory = tmp_path / "model"
    shutil.copytree(mlwfcalc.io.MODELS_DIR / "water-pbe-def2svp", directory)
    assert main(["fit-domain", str(directory), str(water_db), "--n-train", "3", "--n-val", "5", "-q"]) == 0
    assert "H2O from 3 training structures" in capsys.readouterr().out
    config = json.loads((directory / "config.json").read_text())
    domain = TrainingDomain.from_dict(config["domain"])
    assert domain.formulas == {"H2O": 3} and domain.n_atoms == (3, 3)
    (low, high), = domain.distances_ang["H-O"]
    assert 0.8 < low < 0.97 < high < 1.2
    model = mlwfcalc.load_model(directory, device="cpu")
    assert model.uncertainty_threshold == pytest.approx(config["uncertainty"]["config"]["threshold_hartree"])
    assert model.predict(molecule("H2O")).uncertainty > 0


def test_domain_of_structures_holds_shells_and_gaps():
    """Distances seen form intervals; one in the gap between shells, or beyond the margin, is outside."""
    ethanol = molecule("CH3CH2OH")
    rng = np.random.default_rng(0)
    frames = [(ethanol.numbers, ethanol.positions + rng.normal(0, 0.02, ethanol.positions.shape)) for _ in range(20)]
    domain = TrainingDomain.from_structures(frames, margin_ang=0.1)
    assert domain.violations(*frames[0]) == []
    assert len(domain.distances_ang["H-C"]) >= 2  # the C-H bonds and the longer H...C distances
    stretched = ethanol.positions.copy()
    stretched[6] = stretched[0] + 1.5 * (stretched[6] - stretched[0]) / np.linalg.norm(stretched[6] - stretched[0])
    found = domain.violations(ethanol.numbers, stretched)
    assert any("H-C distance of 1.50 A" in f for f in found)
    assert TrainingDomain.from_dict(json.loads(json.dumps(domain.to_dict()))) == domain


def test_chemical_space_domain_refuses_unseen_elements_and_sizes():
    """A domain of any molecule of its elements (``compositions="elements"``) answers for a new molecule of
    those elements and sizes, and refuses an unseen element or a size (atoms, heavy atoms) never seen."""
    seen = [molecule(name) for name in ("CH3CH2OH", "CH3CHO", "CH3CN", "HCOOH", "NH3", "H2O", "C2H6")]
    rng = np.random.default_rng(0)
    frames = [(m.numbers, m.positions + rng.normal(0, 0.02, m.positions.shape)) for m in seen for _ in range(5)]
    domain = TrainingDomain.from_structures(frames, compositions="elements", margin_ang=0.1)
    assert domain.n_atoms == (3, 9) and domain.n_heavy_atoms == (1, 3)
    assert domain.elements == ["C", "H", "N", "O"] and "1-3 heavy atoms" in domain.summary()
    assert domain.violations(*frames[0]) == []
    new = molecule("CH3OCH3")  # never seen, of seen elements and sizes (seven molecules leave distance gaps)
    assert not [f for f in domain.violations(new.numbers, new.positions) if "atoms" in f or "element" in f]
    thiol = molecule("CH3SH")
    assert domain.violations(thiol.numbers, thiol.positions) == ["element S never seen in training (seen: C, H, N, O)"]
    butane = molecule("trans-butane")  # 14 atoms, 4 heavy atoms
    found = domain.violations(butane.numbers, butane.positions)
    assert "14 atoms, outside the 3-9 seen in training" in found
    assert "4 heavy (non-hydrogen) atoms, outside the 1-3 seen in training" in found
    cyanide = molecule("HCN")  # 3 atoms but 2 heavy ones: inside both ranges, judged by distances alone
    assert not any("atoms, outside" in f for f in domain.violations(cyanide.numbers, cyanide.positions))
    # past the bonded shell and the gap after it, a gap of a chemical-space domain is a hole in the sampled
    # molecules: a distance there is inside, where a per-molecule domain refuses it
    hydroxide = TrainingDomain(compositions="elements", formulas={"HO": 1}, n_atoms=(2, 2), n_heavy_atoms=(1, 1),
                               distances_ang={"H-O": [(0.9, 1.0), (1.5, 1.6), (2.0, 2.1)]})
    in_hole, stretched_bond = np.array([[0, 0, 0], [1.8, 0, 0]]), np.array([[0, 0, 0], [1.3, 0, 0]])
    assert hydroxide.violations([8, 1], in_hole) == []
    assert hydroxide.violations([8, 1], stretched_bond) != []
    per_molecule = TrainingDomain(**{**hydroxide.to_dict(), "compositions": "formulas"})
    assert per_molecule.violations([8, 1], in_hole) != []
    with pytest.raises(OutOfDomainError, match="element S never seen"):
        enforce(domain, thiol.numbers, thiol.positions, model_name="a CHNO model")
    assert TrainingDomain.from_dict(json.loads(json.dumps(domain.to_dict()))) == domain
    older = domain.to_dict()
    del older["n_heavy_atoms"]  # a model recorded before heavy atoms were counted: sizes in atoms only
    assert TrainingDomain.from_dict(older).n_heavy_atoms is None and "n_heavy_atoms" not in \
        TrainingDomain.from_dict(older).to_dict()


def test_chemical_space_domain_refuses_fragments_and_compression_not_size():
    """A chemical-space domain refuses a dimer of its molecules (two covalent fragments), a stretched bond
    and a contact shorter than any seen; a distance longer than any seen (a larger molecule) is inside."""
    seen = [molecule(name) for name in ("CH3CH2OH", "CH3CHO", "H2O", "C2H6", "CH3OH")]
    rng = np.random.default_rng(0)
    frames = [(m.numbers, m.positions + rng.normal(0, 0.02, m.positions.shape)) for m in seen for _ in range(5)]
    domain = TrainingDomain.from_structures(frames, compositions="elements", margin_ang=0.1)
    assert domain.n_fragments == (1, 1)
    dimer = molecule("H2O") + molecule("H2O")
    dimer.positions[3:] += [0.0, 0.0, 2.9]  # hydrogen-bond distance: not a covalent bond
    assert any(f.startswith("2 separate fragments") and "every training structure had 1" in f
               for f in domain.violations(dimer.numbers, dimer.positions))
    with pytest.raises(OutOfDomainError, match="2 separate fragments"):
        enforce(domain, dimer.numbers, dimer.positions, model_name="a CHO model")
    ethanol = molecule("CH3CH2OH")
    stretched = ethanol.positions.copy()
    stretched[[2, 8]] += 0.3 * (ethanol.positions[2] - ethanol.positions[1])  # O and its H pulled off the C
    assert any("C-O distance of 1.8" in f for f in domain.violations(ethanol.numbers, stretched))
    big = TrainingDomain(compositions="elements", formulas={"HO": 1}, n_atoms=(2, 4), n_heavy_atoms=(1, 2),
                         n_fragments=(1, 2), distances_ang={"H-O": [(0.9, 1.0), (1.5, 1.6)], "O-O": [(2.3, 2.5)]})
    oo = lambda d: big.violations([8, 8, 1], np.array([[0, 0, 0], [d, 0, 0], [d + 0.95, 0, 0]]))  # noqa: E731
    assert not any("O-O" in f for f in oo(2.4) + oo(4.0))  # longer than seen: a larger molecule
    assert any("O-O distance of 2.00 A" in f and "2.30 A or longer" in f for f in oo(2.0))  # a closer contact
    assert TrainingDomain.from_dict(json.loads(json.dumps(big.to_dict()))) == big


def test_results_with_uncertainty_still_write_to_ase_files(water_model, tmp_path):
    """The extra results (uncertainty and its flag) do not break ASE's trajectory and extxyz writers."""
    from ase.io import read, write

    atoms = stretched_water(1.0)
    atoms.calc = MLWFCalculator(water_model)
    energy = atoms.get_potential_energy()
    for name in ("run.traj", "run.extxyz"):
        write(tmp_path / name, atoms)
        assert read(tmp_path / name).get_potential_energy() == pytest.approx(energy)
