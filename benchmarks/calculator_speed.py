"""Time per energy+forces call: mlwfcalc's ASE calculator against GFN2-xTB (tblite) and PySCF, one run.

    python benchmarks/calculator_speed.py [--model water-pbe-def2svp] \
        [--ethanol-model ethanol-pbe-def2svp] [--threads 2] [--repeats 10] [--device cpu]

Water and ethanol use the given (shipped) models; a model without an energy head, and uracil, use a
randomly initialised model of the same architecture with a random energy head (the cost does not
depend on the weights), so those ML timings are speed only; the table says which. Each calculator
gets one warm-up call, then the median over ``--repeats`` calls on slightly displaced geometries (so no cache is hit). PySCF runs the SCF
from its default (minao) guess at the model's level of theory, then the analytic gradient. ``--device cuda`` runs mlwfcalc's
network on the GPU (PySCF and tblite stay on the CPU).
"""

import argparse
import statistics
import time

import numpy as np
import torch
from ase.build import molecule
from pyscf import lib

from mlwfcalc import MLWFCalculator
from mlwfcalc.predictor import load_model
from mlwfcalc.validation import InputError
from systems import PySCFCalculator, random_model, uracil


def time_calls(atoms, calc, repeats: int) -> float:
    """Median milliseconds of one energy+forces call."""
    atoms = atoms.copy()
    atoms.calc = calc
    rng = np.random.default_rng(0)
    atoms.get_forces()
    times = []
    for _ in range(repeats):
        atoms.positions += 1e-3 * rng.standard_normal(atoms.positions.shape)
        start = time.perf_counter()
        atoms.get_potential_energy(), atoms.get_forces()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="water-pbe-def2svp")
    parser.add_argument("--ethanol-model", default="ethanol-pbe-def2svp")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--pyscf-repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="where mlwfcalc's network runs: cpu or cuda")
    parser.add_argument("--compile", action="store_true",
                        help="also time the network under torch.compile (load_model(..., compile=True))")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lib.num_threads(args.threads)
    from tblite.ase import TBLite

    shipped = load_model(args.model, device=args.device)
    try:
        ethanol = load_model(args.ethanol_model, device=args.device)
    except InputError as err:  # e.g. a model of an older format: time the architecture with random weights
        print(f"ethanol model not loaded ({str(err)[:80]}...): random weights\n")
        ethanol = None
    systems = [("water", molecule("H2O"), shipped),
               ("ethanol", molecule("CH3CH2OH"), ethanol if ethanol is not None and ethanol.energy_head is not None
                else None),
               ("uracil", uracil(), None)]
    print(f"network on {args.device}; {args.threads} threads; median of {args.repeats} calls (PySCF: {args.pyscf_repeats}); milliseconds\n")
    compiled_header = " ml f32 compiled | compiled / xTB |" if args.compile else ""
    print("| molecule | mlwfcalc ml f32 | ml f64 | variational | tblite GFN2-xTB | PySCF SCF+grad | "
          "PySCF / ml f32 | ml f32 / xTB |" + compiled_header)
    print("|---|---|---|---|---|---|---|---|" + ("---|---|" if args.compile else ""))
    for name, atoms, model in systems:
        elements = sorted(set(int(z) for z in atoms.numbers))
        if model is None:
            model = random_model(shipped, elements, torch.float32, args.device)
            name += " (random weights)"
        f32 = time_calls(atoms, MLWFCalculator(model), args.repeats)
        model.network.to(torch.float64)
        f64 = time_calls(atoms, MLWFCalculator(model), args.repeats)
        model.network.to(torch.float32)
        variational = time_calls(atoms, MLWFCalculator(model, mode="variational"), args.pyscf_repeats) \
            if model.path is not None else float("nan")
        xtb = time_calls(atoms, TBLite(method="GFN2-xTB", verbosity=0), args.repeats)
        pyscf = time_calls(atoms, PySCFCalculator(model), args.pyscf_repeats)
        compiled_cells = ""
        if args.compile:
            eager_forward = model.network.fock_and_nodes
            model.network.fock_and_nodes = torch.compile(eager_forward, fullgraph=True, dynamic=True)
            ms = time_calls(atoms, MLWFCalculator(model), args.repeats)
            model.network.fock_and_nodes = eager_forward
            compiled_cells = f" {ms:.1f} | {ms / xtb:.0f}x |"
        print(f"| {name} | {f32:.1f} | {f64:.1f} | {variational:.0f} | {xtb:.1f} | {pyscf:.0f} | "
              f"{pyscf / f32:.0f}x | {f32 / xtb:.0f}x |" + compiled_cells, flush=True)


if __name__ == "__main__":
    main()
