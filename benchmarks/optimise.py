"""Geometry optimisation through a model: where its minimum lies on the model's own level of theory.

    python benchmarks/optimise.py --model organic-pbe-def2svp [--mode harris] [--molecules C6H6,glycine=NCC(=O)O,...]
        [--fmax 0.05] [--steps 100] [-o work/optimise.json]

Each molecule (an ase.build.molecule name, starting at its G2 geometry, or NAME=SMILES, starting at RDKit's
ETKDG + MMFF94 conformer; default the nine small CHNO molecules of issue 43) is relaxed by ASE's BFGS (``fmax``
eV/A) through ``MLWFCalculator(model, mode=...)`` with every other default, and by BFGS through PySCF at the
model's level (RKS, the gradient's Coulomb term as the model's labels had it). Reported per molecule: whether the
model trained on it (any conformer); BFGS steps; the relaxation energy the model claims (its energy at its minimum
less at the start) against the one PySCF finds at the model's minimum; the PySCF energy of the model's minimum
above PySCF's own minimum (meV, the optimisation error a user pays); the largest PySCF force at the model's
minimum (eV/A; issue 43's target: below 0.1); the RMSD between the two minima (A, after alignment). A refusal
(outside the domain, past the hard limit) ends that molecule's run and is reported with the last good geometry's
figures. Results are cached in ``-o`` (resumable per molecule; PySCF's own relaxation is cached per level of theory
and molecule, so another model or mode reuses it).
"""

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
from ase.build import molecule
from ase.build.rotate import minimize_rotation_and_translation
from ase.optimize import BFGS

from mlwfcalc import MLWFCalculator
from mlwfcalc.domain import OutOfDomainError
from mlwfcalc.predictor import load_model
from systems import PySCFCalculator

DEFAULT_MOLECULES = ("benzene=c1ccccc1,acetic-acid=CC(=O)O,methylamine=CN,acetone=CC(C)=O,pyridine=c1ccncc1,"
                     "formamide=NC=O,furan=c1ccoc1,glycine=NCC(=O)O,nicotinamide=NC(=O)c1cccnc1")


def starting_geometry(item: str):
    """``(name, Atoms, canonical SMILES or None)`` of a ``--molecules`` item: an ase.build.molecule name (its G2
    geometry), or ``NAME=SMILES`` (RDKit's conformer)."""
    name, _, smiles = item.partition("=")
    if not smiles:
        return name, molecule(name), None
    from mlwfcalc.data.molecules import Molecule, canonical_smiles, conformer

    return name, conformer(Molecule(smiles=smiles, heavy_atoms=0, formula="")), canonical_smiles(smiles)


def relax(atoms, calc, fmax: float, steps: int) -> tuple[object, int, str]:
    """BFGS from ``atoms`` through ``calc``: (final or last good geometry, steps, "converged" / "not converged" /
    the refusal's class name)."""
    atoms = atoms.copy()
    atoms.calc = calc
    optimiser = BFGS(atoms, logfile=None)
    try:
        converged = optimiser.run(fmax=fmax, steps=steps)
    except OutOfDomainError as err:
        last = getattr(err, "last_good_atoms", None)
        return (last if last is not None else atoms), optimiser.nsteps, type(err).__name__
    return atoms, optimiser.nsteps, "converged" if converged else "not converged"


def reference_relaxation(cache: dict, key: str, start, reference, args, path: Path) -> dict:
    """PySCF's own BFGS from ``start`` (the model's minimum is judged by it), cached in ``cache[key]`` and ``path``:
    start and minimum energies (eV), minimum positions (A), steps."""
    if key not in cache:
        pbe_start = start.copy()
        pbe_start.calc = reference
        e_ref_start = pbe_start.get_potential_energy()
        ref_min, ref_steps, _ = relax(start, reference, args.fmax, args.steps)
        cache[key] = {"start_energy_ev": e_ref_start, "minimum_energy_ev": ref_min.get_potential_energy(),
                      "minimum_positions": ref_min.positions.tolist(), "steps": ref_steps}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cache, indent=1))
        print(f"{key}: PySCF relaxed in {ref_steps} steps", flush=True)
    return cache[key]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="organic-pbe-def2svp")
    parser.add_argument("--mode", help="the calculator's mode (default: the model's recommended route)")
    parser.add_argument("--molecules", default=DEFAULT_MOLECULES,
                        help="comma-separated ase.build.molecule names or NAME=SMILES")
    parser.add_argument("--fmax", type=float, default=0.05, help="eV/A")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("-o", "--output", default="work/optimise.json", help="JSON cache of the results")
    parser.add_argument("--reference-only", action="store_true",
                        help="only PySCF's relaxations (cached; they do not depend on the model's weights)")
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_model(args.model, device="cpu")
    mode = args.mode or model.model.energy_route
    path = Path(args.output)
    cache = json.loads(path.read_text()) if path.exists() else {}
    reference = PySCFCalculator(model)
    trained_on = set(model.model.record.get("training", {}).get("train_molecules", []))
    for item in args.molecules.split(","):
        name, start, smiles = starting_geometry(item)
        key = f"{model.name} {mode} {name}"
        ref_key = f"PySCF {model.theory.name} gradient {model.theory.gradient} {name}"
        if args.reference_only:
            reference_relaxation(cache, ref_key, start, reference, args, path)
            continue
        if key in cache:
            continue
        begun = time.perf_counter()
        calc = MLWFCalculator(model, mode=mode)
        seen = None if smiles is None else smiles in trained_on
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                model_start = start.copy()
                model_start.calc = calc
                e_model_start = model_start.get_potential_energy()
            except OutOfDomainError as err:
                cache[key] = {"molecule": name, "trained_on": seen, "outcome": f"start refused: {type(err).__name__}"}
                path.write_text(json.dumps(cache, indent=1))
                continue
            found, steps, outcome = relax(start, calc, args.fmax, args.steps)
            found.calc = calc
            e_model_min = found.get_potential_energy()
        seconds = time.perf_counter() - begun
        ref = reference_relaxation(cache, ref_key, start, reference, args, path)
        ref_min = start.copy()
        ref_min.positions = np.array(ref["minimum_positions"])
        at_model_min = found.copy()
        at_model_min.calc = reference
        e_ref_at_model_min = at_model_min.get_potential_energy()
        f_ref_at_model_min = float(np.linalg.norm(at_model_min.get_forces(), axis=1).max())
        aligned = found.copy()
        minimize_rotation_and_translation(ref_min, aligned)
        rmsd = float(np.sqrt(((aligned.positions - ref_min.positions) ** 2).sum(axis=1).mean()))
        cache[key] = {"molecule": name, "trained_on": seen, "outcome": outcome, "steps": steps, "seconds": seconds,
                      "model_relaxation_mev": 1000 * (e_model_min - e_model_start),
                      "reference_change_mev": 1000 * (e_ref_at_model_min - ref["start_energy_ev"]),
                      "above_reference_minimum_mev": 1000 * (e_ref_at_model_min - ref["minimum_energy_ev"]),
                      "reference_max_force_ev_per_a": f_ref_at_model_min, "rmsd_a": rmsd,
                      "reference_steps": ref["steps"]}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cache, indent=1))
        print(f"{name}: {cache[key]}", flush=True)
    print(f"\n{model.name}, mode {mode}, BFGS fmax {args.fmax} eV/A; PySCF at the model's level")
    print("| molecule | trained on | outcome | steps | model's relaxation energy, meV | PySCF's change at the model's "
          "minimum, meV | above PySCF's minimum, meV | largest PySCF force there, eV/A | RMSD to PySCF's minimum, A "
          "| s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    done = [r for key, r in cache.items() if key.startswith(f"{model.name} {mode} ")]
    for r in done:
        seen = {True: "yes", False: "no"}.get(r.get("trained_on"), "?")
        if "steps" not in r:
            print(f"| {r['molecule']} | {seen} | {r['outcome']} | | | | | | | |")
            continue
        print(f"| {r['molecule']} | {seen} | {r['outcome']} | {r['steps']} | {r['model_relaxation_mev']:+.0f} | "
              f"{r['reference_change_mev']:+.0f} | {r['above_reference_minimum_mev']:.1f} | "
              f"{r['reference_max_force_ev_per_a']:.2f} | {r['rmsd_a']:.3f} | {r['seconds']:.0f} |")
    below = sum(1 for r in done if r.get("reference_max_force_ev_per_a", np.inf) < 0.1)
    print(f"\n{below} of {len(done)} end where the largest PySCF force is below 0.1 eV/A")

if __name__ == "__main__":
    main()
