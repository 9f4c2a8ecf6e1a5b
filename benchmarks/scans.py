"""Bond and angle scans through a model with its default settings, against the model's own level of theory.

    python benchmarks/scans.py --model water-pbe-def2svp --molecule H2O -o tests/data/scans/water-pbe-def2svp.json
    python benchmarks/scans.py --model organic-pbe-def2svp --frames datasets/organic-pbe-def2svp/frames/test.xyz \
        --n-molecules 10 -o tests/data/scans/organic-pbe-def2svp.json
    python benchmarks/scans.py --evaluate tests/data/scans/water-pbe-def2svp.json   # the model only

Scans (from the start geometry, ASE's ``set_distance`` / ``set_angle`` moving the smaller side of the bond):
each X-H bond of a distinct kind (element pair) from 0.8 to 1.6 A, one acyclic heavy-atom bond from 0.85 to 1.35
times its length, and one angle from -25 to +25 degrees. References (energy, forces) at the model's energy
level (PySCF RKS, or the correlated method of a transfer model) are computed once per point and kept in the
output JSON (resumable: a rerun computes only missing points), so tests/test_scans.py evaluates the model
alone. Each point through ``MLWFCalculator(model)`` with every default: refused (``OutOfDomainError``, its
subclass ``UncertainPredictionError`` included), or its force MAE against the reference; a point more than
5x the card's force error off and not refused is a silent large error.
"""

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import molecule as ase_molecule
from ase.io import read
from ase.units import Bohr, Hartree
from scipy.sparse.csgraph import connected_components

from mlwfcalc.domain import OutOfDomainError, covalent_bonds, distance_matrix

XH_RANGE = np.linspace(0.8, 1.6, 9)  # Angstrom
HEAVY_SCALE = np.linspace(0.85, 1.35, 6)
ANGLE_SHIFT = np.linspace(-25, 25, 6)  # degrees


def _side(bonds: np.ndarray, a: int, b: int) -> np.ndarray | None:
    """Mask of the atoms on ``b``'s side of the bond a-b, or None when the bond is in a ring."""
    cut = bonds.copy()
    cut[a, b] = cut[b, a] = False
    _, labels = connected_components(cut, directed=False)
    if labels[a] == labels[b]:
        return None
    return labels == labels[b]


def scan_geometries(atoms: Atoms) -> list[dict]:
    """``[{"scan", "value", "positions"}]``: the X-H, heavy-atom bond and angle scans of ``atoms``."""
    numbers = atoms.numbers
    bonds = covalent_bonds(numbers, distance_matrix(atoms.positions))
    np.fill_diagonal(bonds, False)
    points, seen = [], set()
    for a, b in zip(*np.nonzero(np.triu(bonds))):
        a, b = int(a), int(b)
        if 1 in (numbers[a], numbers[b]) and numbers[a] != numbers[b]:
            heavy, h = (a, b) if numbers[b] == 1 else (b, a)
            kind = f"{atoms[heavy].symbol}-H"
            if kind in seen:
                continue
            seen.add(kind)
            for d in XH_RANGE:
                moved = atoms.copy()
                moved.set_distance(heavy, h, d, fix=0)
                points.append({"scan": f"{kind} {heavy}-{h}", "value": float(d), "positions": moved.positions.tolist()})
    heavy_bonds = [(int(a), int(b)) for a, b in zip(*np.nonzero(np.triu(bonds)))
                   if numbers[a] > 1 and numbers[b] > 1 and _side(bonds, int(a), int(b)) is not None]
    if heavy_bonds:
        a, b = heavy_bonds[0]
        mask = _side(bonds, a, b)
        d0 = atoms.get_distance(a, b)
        for scale in HEAVY_SCALE:
            moved = atoms.copy()
            moved.set_distance(a, b, d0 * scale, fix=0, indices=np.nonzero(mask)[0].tolist())
            points.append({"scan": f"{atoms[a].symbol}-{atoms[b].symbol} {a}-{b}", "value": float(d0 * scale),
                           "positions": moved.positions.tolist()})
    for centre in range(len(atoms)):  # the first angle whose moving side is not a ring
        neighbours = [int(j) for j in np.nonzero(bonds[centre])[0]]
        if len(neighbours) < 2:
            continue
        i, k = neighbours[0], neighbours[1]
        mask = _side(bonds, centre, k)
        if mask is None:
            continue
        theta = atoms.get_angle(i, centre, k)
        for shift in ANGLE_SHIFT:
            moved = atoms.copy()
            moved.set_angle(i, centre, k, theta + shift, indices=np.nonzero(mask)[0].tolist())
            points.append({"scan": f"angle {i}-{centre}-{k}", "value": float(theta + shift),
                           "positions": moved.positions.tolist()})
        break
    return points


def reference(model, atoms: Atoms) -> tuple[float, np.ndarray]:
    """Energy (Hartree) and forces (Hartree/Bohr) at the model's energy level."""
    from mlwfcalc.theory import LevelOfTheory

    level = model.model.energy_level
    if level == model.theory.name:
        mf = model.theory.make_scf(model.make_mole(atoms))
        energy = mf.kernel()
        if not mf.converged:
            raise RuntimeError("reference SCF did not converge")
        return float(energy), -np.asarray(mf.nuc_grad_method().kernel())
    from mlwfcalc.data.correlated import correlated_labels

    settings = LevelOfTheory.from_name(level)
    from mlwfcalc.basis import BasisLayout

    mol = BasisLayout(settings.basis, atoms.numbers).make_mole(atoms.numbers, atoms.positions / Bohr)
    energy, forces, _, _ = correlated_labels(mol, settings, dipole=False)
    return float(energy), np.asarray(forces)


def card_force_error(model) -> float:
    """The model's headline force MAE, meV/A, in its recommended route (its validation figure)."""
    route = model.model.energy_route
    figures = model.model.record.get("energy_route", {}).get("figures", {})
    if route in figures:
        return float(figures[route]["forces_mev_per_a"])
    if "transfer" in model.model.record:
        return float(model.model.record["transfer"]["validation"]["force_mae_mev_per_a"])
    return float(model.model.record["energy_training"]["val"]["force_mae_mev_per_a"])


def evaluate(record: dict, model, mode: str | None = None) -> list[dict]:
    """Each point through ``MLWFCalculator(model)`` with its defaults (or in ``mode``): ``refused``, or
    ``force_mae_mev_per_a`` and the energy relative to the scan's lowest reference point (``energy_ev``, with
    the reference's as ``reference_energy_ev``)."""
    from mlwfcalc import MLWFCalculator

    rows = []
    for molecule in record["molecules"]:
        for point in molecule["points"]:
            if "forces_ev_per_a" not in point:  # its reference is not computed (yet), or failed
                continue
            atoms = Atoms(molecule["numbers"], positions=point["positions"])
            atoms.calc = MLWFCalculator(model, **({"mode": mode} if mode else {}))
            row = {"molecule": molecule["name"], "scan": point["scan"], "value": point["value"],
                   "reference_energy_ev": point["energy_ev"]}
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    forces = atoms.get_forces()
                row["force_mae_mev_per_a"] = float(np.abs(forces - np.array(point["forces_ev_per_a"])).mean() * 1000)
                row["uncertainty"] = atoms.calc.results.get("uncertainty")
                row["energy_ev"] = float(atoms.get_potential_energy())
            except OutOfDomainError as err:
                row["refused"] = type(err).__name__
            rows.append(row)
    for key in {(r["molecule"], r["scan"]) for r in rows}:  # energies relative to the scan's lowest reference point
        scan = [r for r in rows if (r["molecule"], r["scan"]) == key]
        lowest = min(scan, key=lambda r: r["reference_energy_ev"])
        model_zero, reference_zero = lowest.get("energy_ev"), lowest["reference_energy_ev"]  # before any is shifted
        for r in scan:
            if "energy_ev" in r:
                r["energy_ev"] = r["energy_ev"] - model_zero if model_zero is not None else None
            r["reference_energy_ev"] -= reference_zero
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--molecule", action="append", default=[], help="ase.build.molecule name or xyz file (repeatable)")
    parser.add_argument("--frames", help="xyz of start geometries (first frame per molecule, by info 'smiles')")
    parser.add_argument("--n-molecules", type=int, default=10)
    parser.add_argument("-o", "--output", help="JSON of the scans and their references (resumed)")
    parser.add_argument("--evaluate", help="JSON from a previous run: evaluate the model only")
    parser.add_argument("--mode", help="the calculator's mode (default: the model's recommended route)")
    args = parser.parse_args()
    from mlwfcalc.predictor import load_model

    path = Path(args.evaluate or args.output)
    record = json.loads(path.read_text()) if path.exists() else {"model": args.model, "molecules": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_model(args.model or record["model"], device="cpu")
    if not args.evaluate:
        starts = [(Path(name).stem, read(name)) if Path(name).exists() else (name, ase_molecule(name))
                  for name in args.molecule]
        if args.frames:
            picked = {}
            for atoms in read(args.frames, ":"):
                picked.setdefault(str(atoms.info.get("smiles", len(picked))), atoms)
            starts += list(picked.items())[: args.n_molecules]
        names = {m["name"] for m in record["molecules"]}
        for name, atoms in starts:
            if name not in names:
                record["molecules"].append({"name": name, "numbers": atoms.numbers.tolist(),
                                            "points": scan_geometries(atoms)})
        for molecule in record["molecules"]:
            for point in molecule["points"]:
                if "energy_ev" in point:
                    continue
                atoms = Atoms(molecule["numbers"], positions=point["positions"])
                try:
                    energy, forces = reference(model, atoms)
                except Exception as err:  # a reference SCF that fails: the point is dropped, said so
                    point["reference_failed"] = f"{type(err).__name__}: {err}"
                    continue
                point["energy_ev"], point["forces_ev_per_a"] = energy * Hartree, (forces * Hartree / Bohr).tolist()
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(record))
                print(f"{molecule['name']} {point['scan']} {point['value']:.3f}: reference done", flush=True)
            molecule["points"] = [p for p in molecule["points"] if "energy_ev" in p]
        path.write_text(json.dumps(record))
    limit = 5 * card_force_error(model)
    rows = evaluate(record, model, args.mode)
    silent = [r for r in rows if "refused" not in r and r["force_mae_mev_per_a"] > limit]
    print(f"\n{model.name}: {len(rows)} scan points, {sum('refused' in r for r in rows)} refused, "
          f"{len(silent)} silent large errors (force MAE > 5 x {limit / 5:.1f} meV/A, not refused)")
    threshold = model.uncertainty_threshold
    print(f"uncertainty threshold (ASE units): {threshold and threshold * (Hartree if model.uncertainty.config.quantity == 'fock' else Hartree / Bohr):.3g}")
    print(f"mode: {args.mode or model.model.energy_route}; energies in eV from the scan's lowest reference point")
    print("| molecule | scan | value | result | uncertainty | energy, model | energy, reference |\n"
          "|---|---|---|---|---|---|---|")
    for r in rows:
        result = r.get("refused") or f"{r['force_mae_mev_per_a']:.1f} meV/A" + (" **silent**" if r in silent else "")
        u, e = r.get("uncertainty"), r.get("energy_ev")
        print(f"| {r['molecule']} | {r['scan']} | {r['value']:.2f} | {result} | {'-' if u is None else f'{u:.3g}'} | "
              f"{'-' if e is None else f'{e:+.3f}'} | {r['reference_energy_ev']:+.3f} |")


if __name__ == "__main__":
    main()
