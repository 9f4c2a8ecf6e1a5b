"""Batched energy+forces throughput and latency against batch size, molecule size, dtype and device.

    python benchmarks/gpu_inference.py [--devices cpu cuda] [--dtypes float32 float64]
        [--batch-sizes 1 4 16 64] [--molecules water ethanol uracil] [--threads 2] [--repeats 3]

Every cell times ``model.predict(images, forces=True)`` on ``batch`` slightly displaced copies of the
molecule: the whole user-facing path (network forward on the device, PySCF S and H_core with their
derivatives on the host, energy assembly in float64, one backward pass, orbitals per molecule). A
second column times the network alone (graph construction, forward with the energy head's inputs,
backward to the positions) to show how much of the path is the network. Models are random-weight
networks with the architecture of ``--model`` (timing does not depend on the weights). Devices that
torch cannot see are reported as "not measured". Prints Markdown tables.
"""

import argparse

import numpy as np
import torch
from ase.build import molecule
from ase.units import Bohr
from pyscf import lib

from mlwfcalc.predictor import load_model
from systems import median_ms, random_model, uracil

MOLECULES = {"water": lambda: molecule("H2O"), "ethanol": lambda: molecule("CH3CH2OH"), "uracil": uracil}


def displaced_copies(atoms, n: int, seed: int = 0) -> list:
    """``n`` copies of ``atoms`` with 0.01 A random displacements (no cache can be hit)."""
    rng = np.random.default_rng(seed)
    copies = []
    for _ in range(n):
        copy = atoms.copy()
        copy.positions += 0.01 * rng.standard_normal(copy.positions.shape)
        copies.append(copy)
    return copies


def network_only(model, images, moles):
    """Forward (F and invariant features) plus backward to positions, without PySCF or eigensolves."""
    positions = [torch.as_tensor(a.positions / Bohr, dtype=torch.float64).requires_grad_() for a in images]
    batch = model.graph_batch(images, positions, moles)
    fock, nodes = model.network.fock_and_nodes(batch)
    total = fock.sum() + model.energy_head(model.network.invariants(nodes, model.energy_head.config.features),
                                           batch.numbers).sum()
    torch.autograd.grad(total, positions)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="water-pbe-def2svp", help="architecture to time")
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 4, 16, 64])
    parser.add_argument("--molecules", nargs="+", default=list(MOLECULES), choices=list(MOLECULES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lib.num_threads(args.threads)
    like = load_model(args.model, device="cpu")
    print(f"architecture of {args.model}; {args.threads} CPU threads; median of {args.repeats} calls after one "
          f"warm-up; CUDA: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'not available'}\n")
    print("| device | dtype | molecule | batch | ms per call | molecules/s | network only, ms per call |")
    print("|---|---|---|---|---|---|---|")
    for device in args.devices:
        if device.startswith("cuda") and not torch.cuda.is_available():
            print(f"| {device} | - | - | - | not measured (no GPU) | | |")
            continue
        for dtype_name in args.dtypes:
            dtype = getattr(torch, dtype_name)
            for name in args.molecules:
                atoms = MOLECULES[name]()
                model = random_model(like, sorted(set(int(z) for z in atoms.numbers)), dtype, device)
                for size in args.batch_sizes:
                    images = displaced_copies(atoms, size)
                    moles = [model.make_mole(a) for a in images]
                    full = median_ms(lambda: model.predict(images, forces=True), args.repeats)
                    net = median_ms(lambda: network_only(model, images, moles), args.repeats)
                    print(f"| {device} | {dtype_name} | {name} | {size} | {full:.1f} | {1000 * size / full:.0f} | "
                          f"{net:.1f} |", flush=True)


if __name__ == "__main__":
    main()
