"""NVE molecular dynamics of water with the shipped model; prints the total-energy drift.

    python examples/water_md.py [--ps 1.0]

Velocity Verlet, 0.5 fs steps, velocities from a 300 K Maxwell-Boltzmann distribution.
"""

import argparse

import numpy as np
from ase.build import molecule
from ase.md.verlet import VelocityVerlet
from ase.units import fs

from mlwfcalc import MLWFCalculator
from mlwfcalc.data.sampling import thermalize

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--ps", type=float, default=1.0, help="simulated time, ps")
args = parser.parse_args()

atoms = molecule("H2O")
atoms.calc = MLWFCalculator(model="water-pbe-def2svp")
thermalize(atoms, 300, np.random.default_rng(0))
dynamics = VelocityVerlet(atoms, timestep=0.5 * fs, trajectory="water_md.traj")
times, totals = [], []


def report():
    epot, ekin = atoms.get_potential_energy(), atoms.get_kinetic_energy()
    times.append(dynamics.get_time() / (1000 * fs))
    totals.append(epot + ekin)
    if len(times) % 20 == 1:
        print(f"t = {times[-1]:6.3f} ps  E_pot = {epot:.4f} eV  T = {atoms.get_temperature():6.1f} K  "
              f"E_tot = {totals[-1]:.5f} eV")


dynamics.attach(report, interval=10)
dynamics.run(int(args.ps * 2000))
drift = np.polyfit(times, 1000 * np.array(totals) / len(atoms), 1)[0]
print(f"energy drift {drift:+.4f} meV/atom/ps; max |E_tot - E_tot(0)| "
      f"{1000 * np.abs(np.array(totals) - totals[0]).max():.3f} meV over {times[-1]:.2f} ps")
