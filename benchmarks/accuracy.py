"""Accuracy of models on held-out sets, in one table: the docs/benchmarks.md summary.

    python benchmarks/accuracy.py water-pbe-def2svp=work/water-test.db \
        ethanol-pbe-def2svp=300:work/ethanol-T300.db,900:work/ethanol-T900.db [--threads 2]

Each argument is ``MODEL=DATABASE`` or ``MODEL=LABEL:DATABASE,LABEL:DATABASE,...`` (a model name or
directory, and label databases it was not trained on, for example independent trajectories at
several temperatures). One column per model and database, each molecule randomly rotated with its
references: every metric of ``mlwfcalc evaluate`` (F, occupied orbital energies, orbital cosine,
HOMO-LUMO gap, dipole of the predicted density, the energy head's energy and force MAE, the mean
uncertainty and the share outside the training domain); with ``--scf N`` also the SCF cycle ratio of the
model's guess against minao on N molecules of each set (two PySCF SCFs per molecule).
"""

import argparse

import torch
from pyscf import lib

from mlwfcalc.data import LabelledDataset
from mlwfcalc.predictor import load_model
from mlwfcalc.training.evaluation import evaluate


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", nargs="+", metavar="MODEL=[LABEL:]DATABASE[,...]")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rotate", type=int, default=0, help="rotation seed")
    parser.add_argument("--scf", type=int, default=0, metavar="N", help="SCF warm start on N molecules per set")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lib.num_threads(args.threads)
    columns = {}
    for pair in args.pairs:
        if "=" not in pair:
            parser.error(f"{pair!r}: expected MODEL=DATABASE, e.g. water-pbe-def2svp=work/water-test.db")
        name, sets = pair.split("=", 1)
        model = load_model(name, device="cpu")
        preliminary = " (preliminary)" if model.model.record.get("preliminary") else ""
        for item in sets.split(","):
            label, _, path = item.rpartition(":")
            report = evaluate(model, LabelledDataset(path), progress=False, rotation_seed=args.rotate,
                              scf_frames=args.scf)
            columns[f"{name}{preliminary}" + (f", {label}" if label else "")] = dict(report.rows())
    names = list(columns)
    metrics = list(dict.fromkeys(m for column in columns.values() for m in column))
    print("| metric | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for metric in metrics:
        print(f"| {metric} | " + " | ".join(columns[n].get(metric, "") for n in names) + " |")


if __name__ == "__main__":
    main()
