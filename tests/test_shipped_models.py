"""Every shipped model loads, has a consistent config, and reproduces its stored PySCF reference."""

import json

import numpy as np
import pytest
from ase import Atoms
from ase.units import Hartree

import mlwfcalc
from mlwfcalc.io import MODELS_DIR

SHIPPED = sorted(p for p in MODELS_DIR.glob("*") if (p / "config.json").exists())


def test_the_default_model_is_shipped():
    assert "water-pbe-def2svp" in [m["name"] for m in mlwfcalc.list_models()]


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_model_matches_its_reference_within_the_card(path):
    config = json.loads((path / "config.json").read_text())
    assert config["format"] == "mlwfcalc-model" and config["basis"] and config["functional"]
    assert (path / "README.md").exists(), "every shipped model needs a model card"
    model = mlwfcalc.load_model(path.name, device="cpu")
    assert model.basis == config["basis"] and model.functional == config["functional"]
    reference = json.loads((path / "reference.json").read_text())
    atoms = Atoms(reference["numbers"], positions=reference["positions_angstrom"])
    result = model.predict(atoms)
    if model.energy_head is not None:  # the card's energy MAE is in config.json; 10x that bounds one geometry
        card_mev = config["energy"]["training"]["test"]["energy_mae_mev"]
        error_mev = 1000 * Hartree * abs(result.energy - reference["energy_hartree"])
        assert error_mev < max(10 * card_mev, 1.0), error_mev
    fock = np.asarray(reference["fock_hartree"])
    mae_uha = 1e6 * np.abs(result.fock - fock).mean()
    # one geometry scatters around the card's test-set MAE; twice that is the bound
    assert mae_uha < 2 * reference["card_fock_mae_uha"], mae_uha
    assert np.allclose(result.fock, result.fock.T)
