"""Bond and angle scans of every shipped model (references in tests/data/scans, made by benchmarks/scans.py):
with every default, each point is either within 5x the card's force error of the reference or refused."""

import importlib.util
import json
import warnings
from pathlib import Path

import pytest

import mlwfcalc

SCANS = sorted((Path(__file__).parent / "data" / "scans").glob("*.json"))
ROOT = Path(__file__).resolve().parents[1]


def _scans_module():
    spec = importlib.util.spec_from_file_location("scans", ROOT / "benchmarks" / "scans.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _model(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mlwfcalc.load_model(json.loads(path.read_text())["model"], device="cpu")


#: Scans with a silent large error that no refusal catches yet (issue 40 stays open on them): strict, so a fix shows.
KNOWN_GAPS: dict[str, str] = {
    "organic-pbe-def2svp": "CO2's C=O stretch (1.08-1.53 A): 4 silent large errors, 760-1,007 meV/A, uncertainty 1.0-1.6x "
                           "the soft threshold and under the hard limit (4x); 83 of 237 points refused, the other 150 "
                           "within 5x the card's force error (2026-12-08, organic v4)",
}


def _cases():
    for path in SCANS:
        model = _model(path)
        marks = [pytest.mark.slow] if model.model.energy_route != "ml" else []  # functional routes: seconds a point
        if path.stem in KNOWN_GAPS:
            marks.append(pytest.mark.xfail(reason=KNOWN_GAPS[path.stem], strict=True))
        yield pytest.param(path, marks=marks, id=path.stem)


@pytest.mark.parametrize("path", list(_cases()))
def test_no_silent_large_errors_along_the_scans(path):
    scans = _scans_module()
    model = _model(path)
    limit = 5 * scans.card_force_error(model)
    rows = scans.evaluate(json.loads(path.read_text()), model)
    silent = [r for r in rows if "refused" not in r and r["force_mae_mev_per_a"] > limit]
    assert rows and not silent, f"{len(silent)} of {len(rows)} points more than {limit:.1f} meV/A off, not refused: {silent}"
