"""Accuracy of shipped models on their held-out sets, in one table: the docs/benchmarks.md summary.

    python benchmarks/accuracy.py water-pbe-def2svp=work/water-test.db \
        ethanol-pbe-def2svp=work/ethanol-test.db [--threads 2]

Each argument is ``MODEL=DATABASE`` (a model name or directory, and a label database it was not
trained on). Columns: every metric of ``mlwfcalc evaluate`` (F, occupied orbital energies, orbital
cosine, HOMO-LUMO gap, dipole of the predicted density) and, where the model has an energy head,
the energy MAE (meV per molecule) and force MAE (meV/Angstrom per Cartesian component) of its
energy model against the database's PySCF energies and forces.
"""

import argparse

import torch
from pyscf import lib

from mlwfcalc.data import LabelledDataset
from mlwfcalc.energy_training import model_errors
from mlwfcalc.evaluation import evaluate
from mlwfcalc.predictor import load_model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", nargs="+", metavar="MODEL=DATABASE")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lib.num_threads(args.threads)
    columns = {}
    for pair in args.pairs:
        if "=" not in pair:
            parser.error(f"{pair!r}: expected MODEL=DATABASE, e.g. water-pbe-def2svp=work/water-test.db")
        name, path = pair.split("=", 1)
        model = load_model(name, device="cpu")
        preliminary = bool(model.model.record.get("preliminary"))
        dataset = LabelledDataset(path)
        report = evaluate(model, dataset, progress=False)
        col = {"held-out molecules": f"{report.n_molecules}",
               "F MAE (micro-Hartree)": f"{report.fock_mae_uha:.1f}",
               "occupied orbital energy MAE (micro-Hartree)": f"{report.orbital_energy_mae_uha:.0f}",
               "occupied orbital cosine (%)": f"{report.orbital_cosine_percent:.3f}",
               "HOMO-LUMO gap MAE (meV)": f"{report.homo_lumo_gap_mae_mev:.1f}",
               "dipole MAE (D)": f"{report.dipole_mae_debye:.4f}"}
        if model.energy_head is not None:
            errors = model_errors(model, dataset.samples)
            col["energy MAE (meV)"] = f"{errors['energy_mae_mev']:.2f}"
            col["force MAE (meV/A)"] = f"{errors['force_mae_mev_per_a']:.1f}"
        else:
            col["energy MAE (meV)"] = col["force MAE (meV/A)"] = "no energy head"
        columns[name + (" (preliminary)" if preliminary else "")] = col
    names = list(columns)
    print("| metric | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for metric in next(iter(columns.values())):
        print(f"| {metric} | " + " | ".join(columns[n][metric] for n in names) + " |")


if __name__ == "__main__":
    main()
