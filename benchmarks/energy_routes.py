"""Energy routes of a model on labelled geometries: the energy head, Harris and E_KS at the model's density
(exact forces, and the frozen-density gradient beside them), GFN2-xTB, and the time per call of each.

    python benchmarks/energy_routes.py --model organic-pbe-def2svp --dataset work/organic/organic-train.db \
        --molecules models/organic-pbe-def2svp/subspace_validation_molecules.json [--record] [--n 30]
    python benchmarks/energy_routes.py --model organic-pbe-def2svp --dataset work/organic/organic-test.db \
        [--json models/organic-pbe-def2svp/evaluation_routes.json]

Errors against the database's PySCF energies and forces: energy per atom (absolute, meV/atom), conformer
energy differences within each molecule (every pair of its frames, kcal/mol; only where a molecule has
several frames), forces (meV/A, per component). GFN2-xTB energies after per-element offsets fitted on the
same frames (a generous reading: the offsets see the answers). ``--record`` writes the route with the
lowest force error (energy error breaking ties within 10 %) into the model's config.json as
``energy_route`` (``recommended``, the data it was chosen on and the figures): the calculator's default
mode. Choose on validation molecules, never on the test set; ``--json`` on the test set records the figures that
``mlwfcalc models`` and the card show for the recommended route. Frames the calculator's defaults refuse are
skipped and counted: outside the model's domain, past its uncertainty's hard limit, or with spurious occupied
orbitals (which the functional routes refuse). ``--threads`` sets PySCF's and torch's threads (default 1, as a label's timing).
"""

import argparse
import json
import statistics
import time
import warnings
from collections import defaultdict
from itertools import combinations
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.units import Bohr, Hartree, kcal, mol
from pyscf import lib

from mlwfcalc.data import LabelledDataset
from mlwfcalc.functional import functional_energy
from mlwfcalc.predictor import load_model
from systems import REFUSALS, refusal

MEV = Hartree * 1000
ROUTES = {"ml": "energy head", "harris": "Harris at the model's density, exact forces",
          "variational": "E_KS at the model's density, exact forces",
          "frozen": "PySCF gradient at the model's orbitals (no response)", "xtb": "GFN2-xTB"}


def route_results(model, atoms: Atoms, routes: set[str]) -> dict[str, tuple[float, np.ndarray, float]]:
    """``{route: (energy Hartree, forces Hartree/Bohr, seconds)}`` for one molecule, each of ``routes`` (of
    :data:`ROUTES`) the model can give."""
    out = {}
    if "ml" in routes and model.energy_head is not None:
        start = time.perf_counter()
        (p,) = model.predict_checked([atoms], [(0, 0)], forces=True)
        out["ml"] = (p.energy, p.forces, time.perf_counter() - start)
    for route in sorted(routes & {"harris", "variational"}):
        start = time.perf_counter()
        r = functional_energy(model, atoms, route, "exact")
        out[route] = (r.energy, r.forces, time.perf_counter() - start)
    if "frozen" in routes:
        start = time.perf_counter()
        r = functional_energy(model, atoms, "variational", "frozen-density")
        out["frozen"] = (np.nan, r.forces, time.perf_counter() - start)
    if "xtb" in routes:
        from tblite.ase import TBLite

        calc = TBLite(method="GFN2-xTB", verbosity=0)
        moved = atoms.copy()
        moved.calc = calc
        start = time.perf_counter()
        energy = moved.get_potential_energy() / Hartree
        forces = moved.get_forces() / (Hartree / Bohr)
        out["xtb"] = (energy, forces, time.perf_counter() - start)
    return out


def _offset_fit(energies: np.ndarray, numbers: list[np.ndarray]) -> np.ndarray:
    """Residuals of ``energies`` after a least-squares per-element offset (GFN2-xTB has another zero)."""
    elements = sorted({int(z) for n in numbers for z in n})
    counts = np.array([[np.sum(n == z) for z in elements] for n in numbers], dtype=float)
    offsets, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return energies - counts @ offsets


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="organic-pbe-def2svp")
    parser.add_argument("--dataset", required=True, help="label database with energies and forces")
    parser.add_argument("--molecules", help="JSON list of SMILES: only their frames (e.g. validation molecules)")
    parser.add_argument("--n", type=int, default=None, help="at most this many frames")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-xtb", action="store_true")
    parser.add_argument("--routes", default=",".join(ROUTES), help=f"comma-separated, of {', '.join(ROUTES)} (default all)")
    parser.add_argument("--record", action="store_true", help="write the recommended route into config.json")
    parser.add_argument("--json", help="write the table's figures to this file (a model's evaluation_routes.json: "
                                       "what `mlwfcalc models` and the cards show for its recommended route)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lib.num_threads(args.threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_model(args.model, device="cpu")
    samples = [s for s in LabelledDataset(args.dataset).samples if s.forces is not None]
    if args.molecules:
        wanted = set(json.loads(Path(args.molecules).read_text()))
        samples = [s for s in samples if s.molecule in wanted]
    samples = samples[: args.n]
    errors = defaultdict(lambda: {"energy": [], "forces": [], "seconds": []})
    per_molecule = defaultdict(lambda: defaultdict(list))  # route -> molecule -> [(energy error Hartree)]
    xtb_energies, numbers = [], []
    skipped = dict.fromkeys(REFUSALS, 0)
    for k, sample in enumerate(samples):
        atoms = Atoms(sample.numbers.numpy(), positions=sample.positions.numpy() * Bohr)
        why = refusal(model, atoms)
        if why:
            skipped[why] += 1
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = route_results(model, atoms, set(args.routes.split(",")) - ({"xtb"} if args.no_xtb else set()))
        e_ref, f_ref, n = float(sample.energy), sample.forces.numpy(), len(atoms)
        for route, (energy, forces, seconds) in results.items():
            errors[route]["forces"].append(np.abs(forces - f_ref).mean() * MEV / Bohr)
            errors[route]["seconds"].append(seconds)
            if route not in ("frozen", "xtb"):
                errors[route]["energy"].append(abs(energy - e_ref) * MEV / n)
                per_molecule[route][sample.molecule or f"frame {k}"].append(energy - e_ref)
        if "xtb" in results:
            xtb_energies.append(results["xtb"][0] - e_ref)
            numbers.append(sample.numbers.numpy())
            per_molecule["xtb"][sample.molecule or f"frame {k}"].append(len(xtb_energies) - 1)
        print(f"{k + 1}/{len(samples)} {atoms.get_chemical_formula()}: " + ", ".join(
            f"{r} {errors[r]['forces'][-1]:.0f}" for r in results) + " meV/A", flush=True)
    if xtb_energies:
        residual = _offset_fit(np.array(xtb_energies), numbers)
        errors["xtb"]["energy"] = [abs(r) * MEV / len(z) for r, z in zip(residual, numbers)]
        per_molecule["xtb"] = {m: [residual[i] for i in idx] for m, idx in per_molecule["xtb"].items()}
    to_kcal = Hartree / (kcal / mol)
    print(f"\n{args.model} on {args.dataset}" + (f" ({args.molecules})" if args.molecules else "")
          + f": {sum(len(v['forces']) for v in errors.values()) and len(errors['harris']['forces'])} frames, "
          f"skipped as the defaults refuse them: {skipped}\n")
    print("| route | energy MAE (median), meV/atom | conformer differences MAE, kcal/mol (pairs) | "
          "force MAE (median), meV/A | time per call, median s |")
    print("|---|---|---|---|---|")
    summary = {}
    for route, label in ROUTES.items():
        if route not in errors:
            continue
        e, f, t = errors[route]["energy"], errors[route]["forces"], errors[route]["seconds"]
        pairs = [abs(a - b) * to_kcal for values in per_molecule.get(route, {}).values()
                 for a, b in combinations(values, 2)]
        summary[route] = {"energy_mev_per_atom": float(np.mean(e)) if e else None,
                          "forces_mev_per_a": float(np.mean(f)),
                          "conformer_kcal_per_mol": float(np.mean(pairs)) if pairs else None,
                          "seconds_per_call": float(statistics.median(t))}
        energy = f"{np.mean(e):.1f} ({np.median(e):.1f})" if e else "-"
        conformers = f"{np.mean(pairs):.2f} ({len(pairs)})" if pairs else "-"
        print(f"| {label} | {energy} | {conformers} | {np.mean(f):.0f} ({np.median(f):.0f}) | "
              f"{statistics.median(t):.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "dataset": Path(args.dataset).name, "molecules": Path(args.molecules).name if args.molecules else None,
            "frames": len(errors["harris"]["forces"]), "refused": skipped, "figures": summary}, indent=2))
    if args.record:
        candidates = [r for r in ("ml", "harris", "variational") if r in summary]
        best = min(summary[r]["forces_mev_per_a"] for r in candidates)
        close = [r for r in candidates if summary[r]["forces_mev_per_a"] <= 1.1 * best]
        chosen = min(close, key=lambda r: summary[r]["energy_mev_per_atom"])
        path = Path(model.path) / "config.json"
        config = json.loads(path.read_text())
        config["energy_route"] = {"recommended": chosen, "chosen_on": f"{Path(args.dataset).name}"
                                  + (f", molecules of {Path(args.molecules).name}" if args.molecules else ""),
                                  "frames": len(errors["harris"]["forces"]), "refused": skipped,
                                  "figures": {r: summary[r] for r in candidates}}
        path.write_text(json.dumps(config, indent=2))  # as io.save_model writes it
        print(f"\nrecorded energy_route.recommended = {chosen!r} in {path}")


if __name__ == "__main__":
    main()
