"""Training step time and parameter count of the Hamiltonian model against its size (CPU).

    python benchmarks/train_step_time.py [--threads 2] [--batch-size 8] [--repeats 10]

Prints a Markdown table: channels, layers, parameters, ms per step (forward + backward + AMSGrad)
on random water geometries in float32. Time is the median over the repeats after 3 warm-up steps.
"""

import argparse
import statistics
import time

import numpy as np
import torch
from ase.build import molecule
from ase.units import Bohr

from mlwfcalc.nn import HamiltonianModel, ModelConfig, make_batch


def step_time(model, batch, target, repeats):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, amsgrad=True)
    times = []
    for k in range(repeats + 3):
        start = time.perf_counter()
        loss = (model(batch) - target).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if k >= 3:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--molecule", default="H2O")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    atoms = molecule(args.molecule)
    rng = np.random.default_rng(0)
    numbers = [torch.as_tensor(atoms.numbers)] * args.batch_size
    positions = [torch.as_tensor(atoms.positions / Bohr + 0.1 * rng.standard_normal(atoms.positions.shape),
                                 dtype=torch.float32) for _ in range(args.batch_size)]
    print(f"{args.molecule}, batch {args.batch_size}, {args.threads} threads, float32\n")
    print("| channels | layers | parameters | ms/step |")
    print("|---|---|---|---|")
    for channels, layers in [(8, 2), (16, 3), (32, 3)]:
        torch.manual_seed(0)
        model = HamiltonianModel(ModelConfig(elements=sorted(set(atoms.numbers)), channels=channels,
                                             num_layers=layers))
        batch = make_batch(model.layout, numbers, positions, model.config.cutoff)
        target = torch.zeros(args.batch_size, batch.nmax, batch.nmax)
        ms = 1000 * step_time(model, batch, target, args.repeats)
        print(f"| {channels} | {layers} | {model.num_parameters():,} | {ms:.0f} |")


if __name__ == "__main__":
    main()
