"""Geometry optimisation through a model: where its minimum lies on the model's own level of theory.

    python benchmarks/optimise.py --model organic-pbe-def2svp [--mode harris] [--molecules CH3OH,C5H5N,...]
        [--fmax 0.05] [--steps 100] [-o work/optimise.json]

Each molecule (ase.build.molecule names; default nine small CHNO molecules) starts at its G2 geometry, is relaxed by
ASE's BFGS (``fmax`` eV/A) through ``MLWFCalculator(model, mode=...)`` with every other default, and by BFGS
through PySCF at the model's level (RKS, the gradient's Coulomb term as the model's labels had it). Reported per
molecule: BFGS steps; the relaxation energy the model claims (its energy at its minimum less at the start) against
the one PySCF finds at the model's minimum; the PySCF energy of the model's minimum above PySCF's own minimum
(meV, the optimisation error a user pays); the largest PySCF force at the model's minimum (eV/A); the RMSD between
the two minima (A, after alignment). A refusal (outside the domain, past the hard limit) ends that molecule's run
and is reported with the last good geometry's figures. Results are cached in ``-o`` (resumable per molecule).
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

DEFAULT_MOLECULES = "CH3OH,CH3CHO,HCOOH,CH3CONH2,CH3COOH,C4H4O,C5H5N,CH3CH2OH,H2CCO"


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="organic-pbe-def2svp")
    parser.add_argument("--mode", help="the calculator's mode (default: the model's recommended route)")
    parser.add_argument("--molecules", default=DEFAULT_MOLECULES, help="comma-separated ase.build.molecule names")
    parser.add_argument("--fmax", type=float, default=0.05, help="eV/A")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("-o", "--output", default="work/optimise.json", help="JSON cache of the results")
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_model(args.model, device="cpu")
    mode = args.mode or model.model.energy_route
    path = Path(args.output)
    cache = json.loads(path.read_text()) if path.exists() else {}
    reference = PySCFCalculator(model)
    for name in args.molecules.split(","):
        key = f"{model.name} {mode} {name}"
        if key in cache:
            continue
        start = molecule(name)
        begun = time.perf_counter()
        calc = MLWFCalculator(model, mode=mode)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                model_start = start.copy()
                model_start.calc = calc
                e_model_start = model_start.get_potential_energy()
            except OutOfDomainError as err:
                cache[key] = {"molecule": name, "outcome": f"start refused: {type(err).__name__}"}
                path.write_text(json.dumps(cache, indent=1))
                continue
            found, steps, outcome = relax(start, calc, args.fmax, args.steps)
            found.calc = calc
            e_model_min = found.get_potential_energy()
        seconds = time.perf_counter() - begun
        pbe_start = start.copy()
        pbe_start.calc = reference
        e_ref_start = pbe_start.get_potential_energy()
        at_model_min = found.copy()
        at_model_min.calc = reference
        e_ref_at_model_min = at_model_min.get_potential_energy()
        f_ref_at_model_min = float(np.linalg.norm(at_model_min.get_forces(), axis=1).max())
        ref_min, ref_steps, _ = relax(start, reference, args.fmax, args.steps)
        e_ref_min = ref_min.get_potential_energy()
        aligned = found.copy()
        minimize_rotation_and_translation(ref_min, aligned)
        rmsd = float(np.sqrt(((aligned.positions - ref_min.positions) ** 2).sum(axis=1).mean()))
        cache[key] = {"molecule": name, "outcome": outcome, "steps": steps, "seconds": seconds,
                      "model_relaxation_mev": 1000 * (e_model_min - e_model_start),
                      "reference_change_mev": 1000 * (e_ref_at_model_min - e_ref_start),
                      "above_reference_minimum_mev": 1000 * (e_ref_at_model_min - e_ref_min),
                      "reference_max_force_ev_per_a": f_ref_at_model_min, "rmsd_a": rmsd,
                      "reference_steps": ref_steps}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cache, indent=1))
        print(f"{name}: {cache[key]}", flush=True)
    print(f"\n{model.name}, mode {mode}, BFGS fmax {args.fmax} eV/A from the G2 geometries; PySCF at the model's level")
    print("| molecule | outcome | steps | model's relaxation energy, meV | PySCF's change at the model's minimum, meV | "
          "above PySCF's minimum, meV | largest PySCF force there, eV/A | RMSD to PySCF's minimum, A |")
    print("|---|---|---|---|---|---|---|---|")
    for key, r in cache.items():
        if not key.startswith(f"{model.name} {mode} "):
            continue
        if "steps" not in r:
            print(f"| {r['molecule']} | {r['outcome']} | | | | | | |")
            continue
        print(f"| {r['molecule']} | {r['outcome']} | {r['steps']} | {r['model_relaxation_mev']:+.0f} | "
              f"{r['reference_change_mev']:+.0f} | {r['above_reference_minimum_mev']:.1f} | "
              f"{r['reference_max_force_ev_per_a']:.2f} | {r['rmsd_a']:.3f} |")


if __name__ == "__main__":
    main()
