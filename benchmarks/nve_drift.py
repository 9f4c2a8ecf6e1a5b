"""Energy conservation of NVE molecular dynamics with a model's energy route (velocity Verlet).

    python benchmarks/nve_drift.py [--model water-pbe-def2svp] [--molecule H2O|FILE.xyz] [--ps 10] [--timestep 0.5] \
        [--dtype float32|float64] [--temperature 500] [--threads 1] [--mode ml|harris|variational] \
        [--forces exact|frozen-density]

Starts from the molecule's ASE geometry with Maxwell-Boltzmann velocities (seeded), runs NVE and
prints the drift of the total energy (slope of a linear fit, meV/atom/ps), its standard deviation
and the largest excursion, the cost per step, and how many calls predicted a spurious occupied
orbital (``MLWFCalculator.spurious_calls``). A trajectory that reaches geometries outside the
model's training domain stops there; the figures then cover the steps before, and the time is
printed. Checkpoints nothing: 10 ps of water is 20,000 energy+force calls.
"""

import argparse
import time

import numpy as np
import torch
from ase.md.verlet import VelocityVerlet
from ase.units import fs

from mlwfcalc import MLWFCalculator
from mlwfcalc.domain import OutOfDomainError
from mlwfcalc.data.sampling import load_start_structure, thermalize
from mlwfcalc.predictor import load_model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="water-pbe-def2svp")
    parser.add_argument("--molecule", default="H2O",
                        help="ase.build.molecule name, or an xyz/extxyz file (last frame)")
    parser.add_argument("--ps", type=float, default=10.0)
    parser.add_argument("--timestep", type=float, default=0.5, help="fs")
    parser.add_argument("--temperature", type=float, default=500.0, help="K, initial velocities")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="network dtype")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--mode", default=None, help="calculator mode (default: the model's recommended route)")
    parser.add_argument("--forces", default="exact", help="harris/variational: exact or frozen-density")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model, device="cpu", dtype=getattr(torch, args.dtype))
    atoms = load_start_structure(args.molecule)
    atoms.calc = MLWFCalculator(model, mode=args.mode, forces=args.forces)
    from pyscf import lib

    lib.num_threads(args.threads)
    thermalize(atoms, args.temperature, np.random.default_rng(0))
    steps = int(round(args.ps * 1000 / args.timestep))
    times, energies = [], []
    dynamics = VelocityVerlet(atoms, timestep=args.timestep * fs)

    def record():
        times.append(dynamics.get_time() / (1000 * fs))
        energies.append(atoms.get_potential_energy() + atoms.get_kinetic_energy())

    dynamics.attach(record, interval=10)
    start = time.perf_counter()
    try:
        dynamics.run(steps)
    except OutOfDomainError as err:  # the trajectory reached geometries the model was not trained on
        print(f"stopped after {dynamics.nsteps} steps ({dynamics.get_time() / (1000 * fs):.3f} ps): {err}")
        steps = max(dynamics.nsteps, 1)
    seconds = time.perf_counter() - start
    if len(times) < 2:  # a run cut before its second record has no drift to fit
        print(f"{args.molecule}: too few steps before leaving the domain to measure a drift")
        return
    t, e = np.array(times), 1000 * (np.array(energies) - energies[0]) / len(atoms)  # meV/atom
    slope = np.polyfit(t, e, 1)[0]
    print(f"{args.molecule}, model {args.model}, mode {atoms.calc.parameters.mode} (forces "
          f"{atoms.calc.parameters.forces}), network {args.dtype}, {steps} steps of {args.timestep} fs "
          f"({t[-1]:.2f} ps), start {args.temperature:.0f} K")
    print(f"drift {slope:+.4f} meV/atom/ps; std of E_total {e.std():.4f} meV/atom; max |E - E0| "
          f"{np.abs(e).max():.4f} meV/atom; {1000 * seconds / steps:.1f} ms/step")
    print(f"calls with a spurious occupied orbital (orbitals unreliable there; forces are the energy head's): "
          f"{atoms.calc.spurious_calls} (one call per step)")


if __name__ == "__main__":
    main()
