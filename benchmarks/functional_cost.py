"""Error against cost of a functional route's Fock-build settings (grid level, RI-J), beside the PySCF SCF +
gradient the route replaces and GFN2-xTB, in one run.

    python benchmarks/functional_cost.py --model organic-pbe-def2svp --dataset work/organic/organic-test.db --n 10
    python benchmarks/functional_cost.py --model organic-pbe-def2svp --dataset work/organic/organic-train-v4.db \
        --molecules work/organic/v3-val-molecules.json --n 10 --record      # choose on validation molecules

Per frame (frames the calculator's defaults refuse are skipped and counted), the route (the model's recommended
one unless ``--route``) with exact forces at each setting of ``--settings`` (``GRID:exact`` or ``GRID:ri-j``; the
first is the reference, by default the labels' grid level 3 with exact J): its deviation from the reference
(energy meV/atom, forces meV/A: what the setting itself costs in accuracy), its error against the labels' PBE
energy and forces, and its wall time per call (torch and PySCF at ``--threads``, default 1 as a label's timing).
In the same run: PySCF's SCF from its minao guess plus the nuclear gradient as the labels had it, at
``--pyscf-threads`` (default 2), and GFN2-xTB. ``--record`` writes the cheapest setting whose mean shifts from
the reference (energy and forces) are both within ``--tolerance`` (default 0.1) times the reference's own mean
errors against the labels (so the setting adds at most a tenth to what the model already gets wrong) into the
model's config.json as ``functional_settings`` (the calculator's default); choose on validation molecules, never on
the test set.
"""

import argparse
import json
import statistics
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.units import Bohr, Hartree
from pyscf import lib

from mlwfcalc.data import LabelledDataset
from mlwfcalc.functional import FunctionalSettings, functional_energy
from mlwfcalc.predictor import load_model
from mlwfcalc.pyscf import reference_scf
from systems import REFUSALS, refusal

MEV = Hartree * 1000


def parse_settings(text: str) -> list[FunctionalSettings]:
    """``"3:exact,1:ri-j"`` -> settings (the first is the reference)."""
    out = []
    for item in text.split(","):
        grid, _, coulomb = item.partition(":")
        if coulomb not in ("exact", "ri-j"):
            raise SystemExit(f"--settings {item!r}: give GRID:exact or GRID:ri-j")
        out.append(FunctionalSettings(grid_level=int(grid), ri_j=coulomb == "ri-j"))
    return out


def pyscf_seconds(model, atoms: Atoms, threads: int) -> float:
    """Wall seconds of PySCF's SCF from minao plus the nuclear gradient at the model's level, ``threads`` threads."""
    before = lib.num_threads()
    lib.num_threads(threads)
    try:
        start = time.perf_counter()
        mf = reference_scf(model, model.make_mole(atoms))
        mf.kernel()
        model.theory.nuclear_gradient(mf)
        return time.perf_counter() - start
    finally:
        lib.num_threads(before)


def xtb_seconds(atoms: Atoms) -> float:
    from tblite.ase import TBLite

    moved = atoms.copy()
    moved.calc = TBLite(method="GFN2-xTB", verbosity=0)
    start = time.perf_counter()
    moved.get_forces()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="organic-pbe-def2svp")
    parser.add_argument("--dataset", required=True, help="label database with energies and forces")
    parser.add_argument("--molecules", help="JSON list of SMILES: only their frames (e.g. validation molecules)")
    parser.add_argument("--n", type=int, default=10, help="at most this many frames")
    parser.add_argument("--route", choices=("harris", "variational"), help="default: the model's recommended route")
    parser.add_argument("--settings", default="3:exact,3:ri-j,2:ri-j,1:exact,1:ri-j,0:ri-j")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pyscf-threads", type=int, default=2)
    parser.add_argument("--no-baselines", action="store_true", help="skip PySCF SCF + gradient and GFN2-xTB")
    parser.add_argument("--tolerance", type=float, default=0.1,
                        help="for --record: the largest shift, as a fraction of the reference's error")
    parser.add_argument("--record", action="store_true", help="write the chosen setting into config.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lib.num_threads(args.threads)
    settings = parse_settings(args.settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_model(args.model, device="cpu")
    route = args.route or model.model.energy_route
    if route == "ml":
        raise SystemExit(f"{args.model} recommends its energy head: give --route harris or variational")
    samples = [s for s in LabelledDataset(args.dataset).samples if s.forces is not None]
    if args.molecules:
        wanted = set(json.loads(Path(args.molecules).read_text()))
        samples = [s for s in samples if s.molecule in wanted]
    rows = defaultdict(lambda: defaultdict(list))  # setting name -> quantity -> per frame
    skipped = dict.fromkeys(REFUSALS, 0)
    used = 0
    for sample in samples:
        if used == args.n:
            break
        atoms = Atoms(sample.numbers.numpy(), positions=sample.positions.numpy() * Bohr)
        why = refusal(model, atoms)
        if why:
            skipped[why] += 1
            continue
        used += 1
        n, e_ref, f_ref = len(atoms), float(sample.energy), sample.forces.numpy()
        reference = None
        for setting in settings:
            start = time.perf_counter()
            result = functional_energy(model, atoms, route, "exact", settings=setting)
            seconds = time.perf_counter() - start
            reference = reference or result
            row = rows[setting.name]
            row["seconds"].append(seconds)
            row["energy_shift"].append(abs(result.energy - reference.energy) * MEV / n)
            row["force_shift"].append(np.abs(result.forces - reference.forces).mean() * MEV / Bohr)
            row["energy_error"].append(abs(result.energy - e_ref) * MEV / n)
            row["force_error"].append(np.abs(result.forces - f_ref).mean() * MEV / Bohr)
        if not args.no_baselines:
            rows["pyscf"]["seconds"].append(pyscf_seconds(model, atoms, args.pyscf_threads))
            rows["xtb"]["seconds"].append(xtb_seconds(atoms))
        print(f"{used}/{args.n} {atoms.get_chemical_formula()}: " + ", ".join(
            f"{s.name} {rows[s.name]['seconds'][-1]:.1f} s" for s in settings), flush=True)
    print(f"\n{args.model}, route {route!r}, on {args.dataset}" + (f" ({args.molecules})" if args.molecules else "")
          + f": {used} frames; skipped as the defaults refuse them: {skipped}; reference {settings[0].name}; "
          f"torch and PySCF at {args.threads} thread(s)\n")
    print("| Fock build | energy shift from the reference, meV/atom (max) | force shift, meV/A (max) | energy error "
          "against the labels, meV/atom | force error, meV/A | s per call, median | of PySCF SCF + gradient |")
    print("|---|---|---|---|---|---|---|")
    pyscf = statistics.median(rows["pyscf"]["seconds"]) if rows["pyscf"]["seconds"] else None
    summary = {}
    for setting in settings:
        row = rows[setting.name]
        t = statistics.median(row["seconds"])
        summary[setting] = (np.mean(row["energy_shift"]), np.mean(row["force_shift"]), t,
                            np.mean(row["energy_error"]), np.mean(row["force_error"]))
        ratio = f"{t / pyscf:.2f}" if pyscf else "-"
        print(f"| {setting.name} | {np.mean(row['energy_shift']):.3f} ({np.max(row['energy_shift']):.3f}) | "
              f"{np.mean(row['force_shift']):.2f} ({np.max(row['force_shift']):.2f}) | "
              f"{np.mean(row['energy_error']):.1f} | {np.mean(row['force_error']):.0f} | {t:.2f} | {ratio} |")
    if pyscf:
        print(f"| PySCF SCF (minao) + gradient, {args.pyscf_threads} threads | - | - | 0 | 0 | {pyscf:.2f} | 1 |")
        xtb = statistics.median(rows["xtb"]["seconds"])
        print(f"| GFN2-xTB | - | - | - | - | {xtb:.3f} | {xtb / pyscf:.3f} |")
    if args.record:
        energy_tolerance, force_tolerance = (args.tolerance * x for x in summary[settings[0]][3:])
        good = [s for s, (e, f, *_) in summary.items() if e <= energy_tolerance and f <= force_tolerance]
        chosen = min(good, key=lambda s: summary[s][2])
        path = Path(model.path) / "config.json"
        config = json.loads(path.read_text())
        config["functional_settings"] = {
            "grid_level": chosen.grid_level, "ri_j": chosen.ri_j,
            "chosen_on": Path(args.dataset).name + (f", molecules of {Path(args.molecules).name}" if args.molecules
                                                    else ""),
            "frames": used, "reference": settings[0].name,
            "tolerance": {"fraction_of_the_error": args.tolerance, "energy_mev_per_atom": energy_tolerance,
                          "forces_mev_per_a": force_tolerance},
            "figures": {s.name: {"energy_shift_mev_per_atom": float(e), "force_shift_mev_per_a": float(f),
                                 "seconds_per_call": float(t), "energy_error_mev_per_atom": float(ee),
                                 "force_error_mev_per_a": float(fe)}
                        for s, (e, f, t, ee, fe) in summary.items()}}
        path.write_text(json.dumps(config, indent=2))  # as io.save_model writes it
        print(f"\nrecorded functional_settings = {chosen.name} in {path}")


if __name__ == "__main__":
    main()
