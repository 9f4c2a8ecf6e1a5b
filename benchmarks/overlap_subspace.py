"""Choose (and show the choice of) the overlap subspace a model's orbitals are solved in.

Every threshold of ``--thresholds`` is evaluated on validation molecules the model never trained on, each
randomly rotated; the smallest within 3 % of the best dipole error is chosen
(:func:`mlwfcalc.training.evaluation.choose_overlap_subspace`). ``--molecules FILE`` (a JSON list of SMILES)
names them; ``--write`` records the choice in the model's ``config.json`` (``"orbital_subspace"``).

    python benchmarks/overlap_subspace.py models/organic-pbe-def2svp work/organic/organic-train-v2.db \\
        --molecules models/organic-pbe-def2svp/subspace_validation_molecules.json
"""

import argparse
import json

from mlwfcalc.data import LabelledDataset
from mlwfcalc.io import save_model
from mlwfcalc.predictor import load_model
from mlwfcalc.training.checkpoint import molecules_seen_by
from mlwfcalc.training.evaluation import SUBSPACE_THRESHOLDS, choose_overlap_subspace
from mlwfcalc.validation import InputError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("dataset", help="labels holding the validation molecules")
    parser.add_argument("--molecules", required=True, help="JSON list of the validation molecules' SMILES")
    parser.add_argument("--thresholds", default=",".join(f"{t:g}" for t in SUBSPACE_THRESHOLDS))
    parser.add_argument("--write", action="store_true", help="record the choice in the model's config.json")
    args = parser.parse_args()
    model = load_model(args.model, device="cpu")
    molecules = json.loads(open(args.molecules).read())
    molecules_seen_by(model.model.record, model.name, molecules)  # refuses molecules its training saw
    dataset = LabelledDataset(args.dataset)
    indices = [k for k, s in enumerate(dataset.samples) if s.molecule in set(molecules)]
    if not indices:
        raise InputError(f"none of the {len(molecules)} molecules is in {args.dataset}")
    chosen, reports = choose_overlap_subspace(model, dataset, indices,
                                              [float(t) for t in args.thresholds.split(",")])
    print(f"{model.name} on {len(indices)} geometries of {len(molecules)} validation molecules (rotated, seed 0)")
    print("| threshold | occupied orbital energies (micro-Hartree) | gap (meV) | dipole (D) | spurious | "
          "cost on the reference F: orbital energies, dipole |")
    print("|---|---|---|---|---|---|")
    for t, r in reports.items():
        cost = (f"{r.subspace_orbital_energy_cost_uha:.1f}, {r.subspace_dipole_cost_debye:.3f} D" if t else "0")
        print(f"| {t:g}{' (chosen)' if t == chosen else ''} | {r.orbital_energy_mae_uha:.0f} | "
              f"{r.homo_lumo_gap_mae_mev:.0f} | {r.dipole_mae_debye:.3f} | {r.spurious_orbital_percent:.1f} % | {cost} |")
    if args.write:
        model.model.record["orbital_subspace"] = {  # replaced whole: nothing of an earlier choice stays
            "overlap_threshold": chosen,
            "chosen_on": f"{len(indices)} geometries of {len(molecules)} molecules never trained on "
                         f"({args.molecules}), by benchmarks/overlap_subspace.py"}
        save_model(model.model, model.path)
        print(f"recorded overlap_threshold {chosen:g} in {model.path}/config.json")


if __name__ == "__main__":
    main()
