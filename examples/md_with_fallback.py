"""Langevin MD of a hot water molecule that computes the steps the model should not answer exactly.

    python examples/md_with_fallback.py [--steps 200] [--temperature 1500] [--labels work/fallback-labels.db]

The run starts with one O-H bond stretched to 1.25 A, beyond what the model was trained on, so its first steps
fall back until the bond has relaxed into the data.

``MLWFCalculator(on_uncertain="scf")``: a step outside the model's training domain or past its uncertainty's
hard limit is computed by PySCF at the model's level of theory (warm-started from the model) instead of being
refused, flagged in ``results["scf_fallback"]``, and appended to a label database: what the next model needs
(``mlwfcalc train --init-from water-pbe-def2svp`` on it). Prints how many steps fell back and where the labels are.
"""

import argparse

import numpy as np
from ase.build import molecule
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.units import fs

from mlwfcalc import MLWFCalculator


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=1500.0, help="K: hotter than the model's training")
    parser.add_argument("--labels", default="work/fallback-labels.db", help="label database of the fallback steps")
    args = parser.parse_args()
    atoms = molecule("H2O")
    atoms.set_distance(0, 1, 1.25, fix=0)  # a stretched start: outside the data
    atoms.calc = MLWFCalculator("water-pbe-def2svp", on_uncertain="scf", fallback_database=args.labels)
    MaxwellBoltzmannDistribution(atoms, temperature_K=args.temperature, rng=np.random.default_rng(1))
    dynamics = Langevin(atoms, 0.5 * fs, temperature_K=args.temperature, friction=0.02, rng=np.random.default_rng(2))
    longest = []
    dynamics.attach(lambda: longest.append(max(atoms.get_distance(0, 1), atoms.get_distance(0, 2))), interval=1)
    dynamics.run(args.steps)
    calc = atoms.calc
    print(f"{args.steps} steps at {args.temperature:.0f} K (longest O-H {max(longest):.3f} A): {calc.calls} calls, "
          f"{calc.scf_fallback_calls} computed exactly by PySCF (outside the domain or past the hard limit), "
          f"{calc.flagged_calls} above the soft threshold; fallback labels in {args.labels}")


if __name__ == "__main__":
    main()
