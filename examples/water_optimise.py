"""BFGS optimisation of water with the shipped model, compared with PySCF's own optimum.

    python examples/water_optimise.py

The model's energy model (mode "ml") and the exact DFT answer (mode "scf": PySCF PBE/def2-SVP,
warm-started from the model) are optimised from the same distorted start.
"""

from ase.build import molecule
from ase.optimize import BFGS

from mlwfcalc import MLWFCalculator, load_model

model = load_model("water-pbe-def2svp")
start = molecule("H2O")
start.positions[1] += [0.05, 0.03, -0.04]
results = {}
for mode in ("ml", "scf"):
    atoms = start.copy()
    atoms.calc = MLWFCalculator(model, mode=mode)
    optimiser = BFGS(atoms, logfile=None)
    optimiser.run(fmax=0.005)
    results[mode] = atoms
    print(f"{mode:>3}: {optimiser.nsteps:2d} steps, {atoms.calc.calls} calls, r(O-H) = {atoms.get_distance(0, 1):.4f} "
          f"{atoms.get_distance(0, 2):.4f} A, angle H-O-H = {atoms.get_angle(1, 0, 2):.2f} deg, "
          f"E = {atoms.get_potential_energy():.5f} eV")
ml, dft = results["ml"], results["scf"]
print(f"model - PySCF: r(O-H) {1000 * (ml.get_distance(0, 1) - dft.get_distance(0, 1)):+.2f} mA, "
      f"angle {ml.get_angle(1, 0, 2) - dft.get_angle(1, 0, 2):+.2f} deg, "
      f"energy {1000 * (ml.get_potential_energy() - dft.get_potential_energy()):+.2f} meV")
