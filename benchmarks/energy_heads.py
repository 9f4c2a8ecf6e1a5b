"""Energy heads compared on one frozen network: electronic term, features, MLP and schedule.

    python benchmarks/energy_heads.py --model ethanol-pbe-def2svp --dataset work/ethanol-train.db \
        --test work/ethanol-test.db [--threads 2] [--fit '{"term": "none", "features": "invariants", "lr": 0.01}' ...]

Precomputes once, with the richest inputs (the ``"invariants"`` features, whose first columns are
the ``"scalars"`` ones, and the half-core ``E_nn + E_el``), then fits one head per ``--fit``
(``EnergyFitConfig`` fields as JSON) on the model's own training/validation split and prints
energy and force MAE on training, validation and the held-out set: the table behind the shipped
ethanol head (docs/architecture.md, "The energy model and why").
"""

import argparse
import json
import time
from dataclasses import replace

import torch

from mlwfcalc.data import LabelledDataset
from mlwfcalc.predictor import load_model
from mlwfcalc.training.energy_fit import EnergyFitConfig, Precomputed, errors, fit_energy_head, precompute

DEFAULT_FITS = [
    {"term": "half-core", "features": "scalars", "epochs": 200, "lr": 0.003},
    {"term": "none", "features": "scalars", "epochs": 800, "lr": 0.01},
    {"term": "none", "features": "scalars", "epochs": 2400, "lr": 0.01},
    {"term": "none", "features": "invariants", "epochs": 800, "lr": 0.01},
]


def view(groups: list[Precomputed], term: str, features: str, num_scalars: int) -> list[Precomputed]:
    """The precomputed half-core / invariants data as a head of ``term`` and ``features`` sees it."""
    out = []
    for g in groups:
        if features == "scalars":
            g = replace(g, scalars=g.scalars[:, :, :num_scalars], jacobian=g.jacobian[:, :, :num_scalars])
        if term == "none":
            g = replace(g, base_energy=torch.zeros_like(g.base_energy), base_gradient=torch.zeros_like(g.base_gradient))
        out.append(g)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ethanol-pbe-def2svp")
    parser.add_argument("--dataset", required=True, help="the model's training label database")
    parser.add_argument("--test", required=True, help="held-out label database")
    parser.add_argument("--fit", action="append", help="EnergyFitConfig fields as JSON (repeatable)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model, device="cpu")
    if model.network.config.target != "fock":
        raise SystemExit("the band and half-core terms need a model that predicts F itself")
    training = model.model.record.get("training", {})
    dataset = LabelledDataset(args.dataset)
    split = training.get("train_config", {})
    seed = split.get("seed", 0)
    train_index, val_index = dataset.split([split.get("n_train", 0.9), split.get("n_val", 0.1)], seed)
    start = time.perf_counter()
    splits = {"train": [dataset[int(i)] for i in train_index], "val": [dataset[int(i)] for i in val_index],
              "test": LabelledDataset(args.test).samples}
    data = {name: precompute(model, samples, "half-core", "invariants", progress=False)
            for name, samples in splits.items()}
    seconds = time.perf_counter() - start
    print(f"model {args.model}; {len(train_index)} train / {len(val_index)} validation geometries of "
          f"{args.dataset}, test {args.test}; features and Jacobians in {seconds:.0f} s on {args.threads} threads\n")
    print("| term | features | MLP | epochs | lr | train E / F | validation E / F | test E / F | fit s |")
    print("|---|---|---|---|---|---|---|---|---|")
    num_scalars = model.network.invariant_width("scalars")  # the leading columns
    for fit in [json.loads(f) for f in args.fit] if args.fit else DEFAULT_FITS:
        config = EnergyFitConfig(**{**fit, "seed": seed})
        parts = {k: view(v, config.term, config.features, num_scalars) for k, v in data.items()}
        start = time.perf_counter()
        head, _ = fit_energy_head(parts["train"], parts["val"], model.elements, config, progress=False)
        seconds = time.perf_counter() - start
        cells = []
        for part in ("train", "val", "test"):
            e = errors(head, parts[part])
            cells.append(f"{e['energy_mae_mev']:.2f} / {e['force_mae_mev_per_a']:.1f}")
        print(f"| {config.term} | {config.features} | {','.join(map(str, config.hidden))} | {config.epochs} | "
              f"{config.lr:g} | {' | '.join(cells)} | {seconds:.0f} |", flush=True)
    print("\nenergy MAE meV, force MAE meV/A per Cartesian component")


if __name__ == "__main__":
    main()
