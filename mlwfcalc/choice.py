"""``model="auto"``: the shipped model whose training domain covers a molecule.

The choice goes by composition (the Hill formula, its elements and sizes), in the order of
:func:`mlwfcalc.io.models_covering`: a per-molecule model (``water-pbe-def2svp`` for H2O) before the
chemical-space one (``organic-pbe-def2svp`` for any H, C, N, O, F molecule of 1-9 heavy atoms), Kohn-Sham
models before transfer models. The geometry is then checked against the chosen model's domain as for a
model given by name. Every front end resolves ``"auto"`` where the molecule is first known: the calculator
on its first calculation (then fixed), ``guess_dm`` and ``TrajectoryGuess`` per molecule,
``load_model("auto", atoms=...)`` from the atoms given. The choice is said once per model and process.
"""

from __future__ import annotations

from typing import Sequence

from ase.formula import Formula

from .domain import OutOfDomainError, TrainingDomain, hill_formula
from .io import MAKE_A_MODEL, list_models, models_covering
from .notices import notice

AUTO = "auto"


def is_auto(model) -> bool:
    """Whether ``model`` asks for the automatic choice (the string ``"auto"``)."""
    return isinstance(model, str) and model == AUTO


def choose_model(numbers: Sequence[int], say: bool = True) -> str:
    """The name of the shipped model for a molecule of atomic numbers ``numbers``; says the choice once
    (``say`` False: the caller says it, as the command line does in its output).

    Raises :class:`~mlwfcalc.domain.OutOfDomainError` when no shipped model covers the composition,
    naming the nearest one and what it covers.
    """
    formula = hill_formula(numbers)
    names = models_covering(formula)
    if not names:
        raise OutOfDomainError(f"no shipped model covers {formula}: {nearest_model(formula)}. Train one "
                               f"({MAKE_A_MODEL}); for an exact answer without a model use "
                               "MLWFCalculator(mode='scf') or `mlwfcalc scf`")
    if say:
        notice(f"auto {names[0]}", f"model='auto': {names[0]} for {formula}"
               + (f" (also covered by {', '.join(names[1:])})" if names[1:] else ""))
    return names[0]


def nearest_model(formula: str) -> str:
    """A phrase naming the shipped model nearest to ``formula`` (fewest elements it never saw, then the
    closest size) and what it covers, e.g. ``"the nearest is organic-pbe-def2svp (molecules of ...)"``."""
    counts = Formula(formula).count()
    best = None
    for entry in list_models():
        if not entry.get("domain"):
            continue
        domain = TrainingDomain.from_dict(entry["domain"])
        missing = sorted(set(counts) - set(domain.elements))
        size = sum(counts.values())
        gap = max(domain.n_atoms[0] - size, size - domain.n_atoms[1], 0)
        key = (len(missing), gap, entry["transfer"], entry["name"])
        if best is None or key < best[0]:
            best = (key, entry["name"], domain, missing)
    if best is None:
        return "no shipped model has a recorded domain"
    _, name, domain, missing = best
    why = f"it never saw {' '.join(missing)}" if missing else "its sizes or formulas differ"
    return f"the nearest is {name} ({domain.summary()}; {why})"
