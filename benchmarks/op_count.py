"""aten operations and CPU time of one batched E+F prediction and one training step, shipped architecture.

    python benchmarks/op_count.py [--model ethanol-pbe-def2svp] [--molecule CH3CH2OH] [--batch-size 8]
        [--threads 2] [--repeats 5]

The network is built with the architecture in the model's ``config.json`` (random weights: the
cost does not depend on them) and an energy head of the shipped kind (term ``none``, features
``invariants``). Counted with ``torch.profiler`` (CPU activity): every ``aten::`` event, nested
ones included, of

* ``model.predict(batch-size molecules, forces=True)``: the user-facing E+F path (graph, network,
  energy head, backward to the positions, PySCF overlap and one eigensolve per molecule);
* one training step on F: forward, MSE + MAE loss, backward, AMSGrad update.

It uses only APIs that the earlier (format 1) network shared, so the same script measures both:
run it once with ``PYTHONPATH`` pointing at an older checkout to get the "before" row.
Prints one Markdown table row per quantity.
"""

import argparse
import json
import statistics
import time

import numpy as np
import torch
from ase.build import molecule
from ase.units import Bohr
from pyscf import lib
from torch.profiler import ProfilerActivity, profile

import mlwfcalc
from mlwfcalc.io import resolve_model_path
from mlwfcalc.nn import make_batch
from systems import random_model


def count_aten(function) -> int:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        function()
    return sum(1 for event in prof.events() if event.name.startswith("aten::"))


def median_ms(function, repeats: int) -> float:
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ethanol-pbe-def2svp", help="shipped model whose architecture is timed")
    parser.add_argument("--molecule", default="CH3CH2OH")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--label", default=f"mlwfcalc {mlwfcalc.__version__}", help="name of this code in the table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lib.num_threads(args.threads)
    atoms = molecule(args.molecule)
    section = json.loads((resolve_model_path(args.model) / "config.json").read_text())["model"]
    model = random_model(None, sorted(set(int(z) for z in atoms.numbers)), architecture=section)
    network = model.network
    rng = np.random.default_rng(0)
    images = []
    for _ in range(args.batch_size):
        image = atoms.copy()
        image.positions += 0.05 * rng.standard_normal(image.positions.shape)
        images.append(image)

    def predict():
        model.predict(images, forces=True)

    batch = make_batch(network.layout, [torch.as_tensor(a.numbers) for a in images],
                       [torch.as_tensor(a.positions / Bohr, dtype=torch.float32) for a in images],
                       network.config.cutoff)
    target = torch.randn(args.batch_size, batch.nao.max().item(), batch.nao.max().item()) * 1e-2
    try:  # the optimiser the Trainer of this code version builds
        from mlwfcalc.training.optimisation import TrainConfig, make_optimizer
        optimizer = make_optimizer(network.parameters(), TrainConfig(lr=1e-4))
    except ImportError:  # format-1 code: plain AdamW with AMSGrad
        optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4, amsgrad=True)

    def train_step():
        network.train()
        error = network(batch) - target
        loss = error.pow(2).mean() + error.abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    parameters = sum(p.numel() for p in network.parameters())
    print(f"{args.label}: architecture of {args.model} ({parameters:,} parameters), "
          f"{args.molecule} x {args.batch_size},"
          f" {args.threads} threads, float32")
    print("| code | quantity | aten ops | ms (median) |")
    print("|---|---|---|---|")
    for name, function in [("predict E+F", predict), ("training step", train_step)]:
        ops = count_aten(function)
        ms = median_ms(function, args.repeats)
        print(f"| {args.label} | {name}, {args.molecule} x {args.batch_size} | {ops:,} | {ms:.0f} |", flush=True)


if __name__ == "__main__":
    main()
