"""Frames off the training distribution (hotter MD, other seeds), randomly rotated, through a model's defaults:
how many large errors come back silently, and how many good answers are refused.

    python benchmarks/hot_frames.py --model water-ccsdt --frames work/heldout/water600.xyz \
        --references work/heldout/water600-ccsdt.json
    python benchmarks/hot_frames.py --model water-pbe-def2svp --frames work/heldout/water600.xyz \
        --references work/heldout/water600-pbe.json [--factors 2,3,4,6,8]

References (energy, forces at the model's energy level: PySCF RKS, or the transfer model's correlated
method without its dipole) are computed once per frame and cached in ``--references`` (resumable). Each
frame is rotated at random (seeded), then computed by ``MLWFCalculator(model)`` with every default: refused
(domain or hard limit) or returned. Its force error is measured either way (``domain="warn"``,
``on_uncertain="warn"``), so the table says what a refusal saved and what it cost: silent large errors
(returned, forces more than 250 meV/A off, MAE over components) and false refusals (refused, error below
50 meV/A). ``--factors`` repeats the count for other hard-limit factors (times the validation mean error)
and prints the cost of the hard-limit check.
"""

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from ase.io import read
from ase.units import Bohr, Hartree
from scipy.spatial.transform import Rotation

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scans import reference  # noqa: E402  (the same references as the scans)

from mlwfcalc import MLWFCalculator, OutOfDomainError  # noqa: E402
from mlwfcalc.predictor import load_model  # noqa: E402
from mlwfcalc.uncertainty import check_hard_limit  # noqa: E402

LARGE, SMALL = 250.0, 50.0  # meV/A


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--frames", required=True)
    parser.add_argument("--references", required=True, help="JSON cache of the reference energies and forces")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random rotations")
    parser.add_argument("--factors", default="", help="other hard-limit factors to count, e.g. 2,3,6")
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_model(args.model, device="cpu")
    frames = read(args.frames, ":")
    cache_path = Path(args.references)
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    rotations = Rotation.random(len(frames), random_state=args.seed).as_matrix()
    rows = []
    for k, atoms in enumerate(frames):
        atoms.positions = (atoms.positions - atoms.positions.mean(0)) @ rotations[k].T
        if str(k) not in cache:
            energy, forces = reference(model, atoms)
            cache[str(k)] = {"energy_ev": energy * Hartree, "forces_ev_per_a": (forces * Hartree / Bohr).tolist()}
            cache_path.write_text(json.dumps(cache))
        f_ref = np.array(cache[str(k)]["forces_ev_per_a"])
        row = {"frame": k}
        atoms.calc = MLWFCalculator(model)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                atoms.get_forces()
        except OutOfDomainError as err:
            row["refused"] = type(err).__name__
        probe = atoms.copy()
        probe.calc = MLWFCalculator(model, domain="warn", on_uncertain="warn")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            forces = probe.get_forces()
        row["error"] = float(np.abs(forces - f_ref).mean() * 1000)
        row["uncertainty"] = probe.calc.prediction.uncertainty
        rows.append(row)
    config = model.uncertainty.config
    mean_error = config.threshold_hartree / config.threshold_factor
    factors = [config.hard_limit_factor] + [float(f) for f in args.factors.split(",") if f]
    print(f"{model.name} on {len(rows)} frames of {args.frames}, randomly rotated (seed {args.seed}); hard limit "
          f"{config.describe(config.hard_limit_hartree)} (factor {config.hard_limit_factor:g}); force MAE of every "
          f"frame, meV/A: median {np.median([r['error'] for r in rows]):.1f}, max {max(r['error'] for r in rows):.1f}\n")
    print("| hard-limit factor | refused | silent large errors (> 250 meV/A) | false refusals (< 50 meV/A) |")
    print("|---|---|---|---|")
    for factor in factors:
        limit = factor * mean_error
        if factor == config.hard_limit_factor:
            refused = ["refused" in r for r in rows]
        else:  # the domain refusals stay; the hard limit moves
            refused = [r.get("refused") == "OutOfDomainError" or (r["uncertainty"] or 0) > limit for r in rows]
        silent = sum(1 for r, x in zip(rows, refused) if not x and r["error"] > LARGE)
        false = sum(1 for r, x in zip(rows, refused) if x and r["error"] < SMALL)
        print(f"| {factor:g}{' (model)' if factor == config.hard_limit_factor else ''} | {sum(refused)} | {silent} | "
              f"{false} |")
    start = time.perf_counter()
    for _ in range(10000):
        check_hard_limit(1e-12, model.uncertainty, model.name, "H2O")
    print(f"\nthe hard-limit check: {(time.perf_counter() - start) / 10000 * 1e6:.2f} microseconds per call")
    print("\n| frame | force MAE, meV/A | uncertainty | default |\n|---|---|---|---|")
    for r in rows:
        u = r["uncertainty"]
        print(f"| {r['frame']} | {r['error']:.1f} | {'-' if u is None else config.describe(u)} | "
              f"{r.get('refused', 'returned')} |")


if __name__ == "__main__":
    main()
