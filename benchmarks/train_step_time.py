"""Training step time of the Hamiltonian model against its size, batch size and device.

    python benchmarks/train_step_time.py [--devices cpu cuda] [--batch-sizes 8 32] [--threads 2]
        [--repeats 10] [--molecule CH3CH2OH] [--sizes 8x2 16x3 32x3]

Prints a Markdown table: device, channels, layers, parameters, batch, ms per step (forward +
backward + AMSGrad, float32, random geometries of ``--molecule`` within 0.1 Bohr of ASE's) and
molecules per second. Time is the median over the repeats after 3 warm-up steps, CUDA synchronised.
16x3 is the shipped models' size (lmax 4). Devices torch cannot see are reported as not measured.
"""

import argparse

import numpy as np
import torch
from ase.build import molecule
from ase.units import Bohr

from mlwfcalc.nn import HamiltonianModel, ModelConfig, make_batch
from systems import median_ms


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", nargs="+", default=["cpu"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[8])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--molecule", default="H2O")
    parser.add_argument("--sizes", nargs="+", default=["8x2", "16x3", "32x3"], help="CHANNELSxLAYERS")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    atoms = molecule(args.molecule)
    rng = np.random.default_rng(0)
    print(f"{args.molecule}, {args.threads} CPU threads, float32, median of {args.repeats} steps; CUDA: "
          f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'not available'}\n")
    print("| device | channels | layers | parameters | batch | ms/step | molecules/s |")
    print("|---|---|---|---|---|---|---|")
    for device in args.devices:
        if device.startswith("cuda") and not torch.cuda.is_available():
            print(f"| {device} | | | | | not measured (no GPU) | |")
            continue
        for size in args.sizes:
            channels, layers = map(int, size.split("x"))
            torch.manual_seed(0)
            model = HamiltonianModel(ModelConfig(elements=sorted(set(atoms.numbers)), channels=channels,
                                                 num_layers=layers)).to(device)
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, amsgrad=True)
            for batch_size in args.batch_sizes:
                numbers = [torch.as_tensor(atoms.numbers)] * batch_size
                positions = [torch.as_tensor(atoms.positions / Bohr + 0.1 * rng.standard_normal(atoms.positions.shape),
                                             dtype=torch.float32) for _ in range(batch_size)]
                batch = make_batch(model.layout, numbers, positions, model.config.cutoff).to(device)
                target = torch.zeros(batch_size, batch.nmax, batch.nmax, device=device)

                def step():
                    loss = (model(batch) - target).pow(2).mean()
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()

                ms = median_ms(step, args.repeats, warmup=3)
                print(f"| {device} | {channels} | {layers} | {model.num_parameters():,} | {batch_size} | {ms:.1f} | "
                      f"{1000 * batch_size / ms:.0f} |", flush=True)


if __name__ == "__main__":
    main()
