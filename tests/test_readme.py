"""The README and the model cards as a newcomer reads them: every Python snippet runs and prints what it
computes, every figure in a models table is the recorded evaluation's, every README section an error
message cites exists, and the extras' errors name the extra.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlwfcalc import catalogue

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "models").glob("*/README.md"))]
#: Snippets over about 20 s on 2 cores (an SCF of a larger molecule, or two): marked slow.
SLOW = ("acetate", "uracil", "malondialdehyde")


def _snippets():
    for document in DOCUMENTS:
        for k, code in enumerate(re.findall(r"```python\n(.*?)```", document.read_text(), flags=re.S)):
            name = f"{document.relative_to(ROOT)}#{k}"
            slow = any(word in code for word in SLOW)
            yield pytest.param(code, id=name, marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("code", list(_snippets()))
def test_snippet_runs_and_prints(code, tmp_path):
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip(), "a snippet prints what it computes"
    for line in run.stderr.splitlines():  # warnings: one line each, at the snippet's own line
        assert "mlwfcalc/" not in line or "UserWarning" not in line, line


def test_models_tables_are_the_recorded_evaluations():
    assert catalogue.main(["--check", "--root", str(ROOT)]) == 0, "run python -m mlwfcalc.catalogue --write"
    organic = catalogue.summarise(ROOT / "models" / "organic-pbe-def2svp")
    assert organic.fit_for == ["SCF guess"]  # preliminary
    # no energy head: its energies and forces are the recommended functional route's, on the held-out frames
    routes = json.loads((ROOT / "models" / "organic-pbe-def2svp" / "evaluation_routes.json").read_text())
    assert organic.energy_route == "variational" and organic.energy_per_atom
    assert organic.force_mae_mev_per_a == routes["figures"]["variational"]["forces_mev_per_a"]
    assert "mode 'variational'" in catalogue.describe(organic) and "meV/atom" in catalogue.describe(organic)
    assert round(organic.fock_mae_uha) == 333
    water = catalogue.summarise(ROOT / "models" / "water-pbe-def2svp")
    assert round(water.fock_mae_uha, 1) == 11.6 and "MD" in water.fit_for


def test_cited_readme_sections_exist():
    headings = {line.lstrip("#").strip() for line in (ROOT / "README.md").read_text().splitlines()
                if line.startswith("#")}
    cited = set()
    for source in (ROOT / "mlwfcalc").rglob("*.py"):
        cited |= set(re.findall(r"README(?:\.md)?, '([^']+)'", source.read_text()))
    assert cited and cited <= headings, cited - headings


def test_extras_errors_name_the_extra():
    for source, extra in (("data/molecules.py", "organic"), ("data/sampling.py", "sample")):
        assert f"mlwfcalc[{extra}]" in (ROOT / "mlwfcalc" / source).read_text()
    readme = (ROOT / "README.md").read_text()
    assert '".[sample]"' in readme and '".[organic]"' in readme
