"""The main job on the shipped water model: a short NVE run, then a warm-started PySCF SCF.

    python examples/quickstart.py [--model water-pbe-def2svp] [--steps 20] [--output quickstart.json]

1. Water at 500 K for ``--steps`` velocity-Verlet steps of 0.5 fs with the ASE calculator (mode "ml"):
   prints each step's potential and total energy (eV), largest force (eV/A) and HOMO-LUMO gap (eV).
2. PySCF RKS at the model's level of theory on the last geometry, once from the model's density and
   once from PySCF's default (minao) guess: prints the cycles of each and the energy difference.
Everything printed is also written to ``--output`` (JSON).
"""

import argparse
import json

import numpy as np
from ase import units
from ase.build import molecule
from ase.md.verlet import VelocityVerlet

import mlwfcalc
from mlwfcalc.data.sampling import thermalize
from mlwfcalc.pyscf import reference_scf, warm_start


def scf_cycles(mf) -> tuple[float, int]:
    """Run ``mf`` and return (energy in Hartree, SCF cycles); unconverged is an error."""
    cycles = []
    mf.callback = lambda env: cycles.append(env["cycle"])
    mf.kernel()
    if not mf.converged:
        raise RuntimeError("PySCF SCF did not converge")
    return float(mf.e_tot), len(cycles)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="water-pbe-def2svp")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--output", default="quickstart.json")
    args = parser.parse_args()

    model = mlwfcalc.load_model(args.model, device="auto")
    atoms = molecule("H2O")
    atoms.calc = mlwfcalc.MLWFCalculator(model)
    thermalize(atoms, 500, np.random.default_rng(0))  # Maxwell-Boltzmann momenta, no net translation or rotation
    dynamics = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    record = {"model": str(model.path), "device": str(model.device), "md": []}
    print(f"{model}\n\n step   E_pot (eV)     E_tot (eV)   max |F| (eV/A)  HOMO-LUMO gap (eV)")

    def report():
        homo, lumo = atoms.calc.get_homo_lumo()
        row = {"step": dynamics.nsteps, "potential_eV": atoms.get_potential_energy(),
               "total_eV": atoms.get_total_energy(), "max_force_eV_per_A": float(np.abs(atoms.get_forces()).max()),
               "homo_lumo_gap_eV": lumo - homo}
        record["md"].append(row)
        print(f"{row['step']:5d}  {row['potential_eV']:13.5f}  {row['total_eV']:13.5f}  "
              f"{row['max_force_eV_per_A']:14.4f}  {row['homo_lumo_gap_eV']:18.4f}")

    dynamics.attach(report, interval=1)
    dynamics.run(args.steps)

    mol = model.make_mole(atoms)
    e_model, n_model = scf_cycles(warm_start(reference_scf(model, mol), model=model))
    e_minao, n_minao = scf_cycles(reference_scf(model, mol))
    record["scf"] = {"cycles_from_model": n_model, "cycles_from_minao": n_minao, "energy_hartree": e_model,
                     "energy_difference_hartree": e_model - e_minao}
    print(f"\nPySCF {model.functional}/{model.basis} on the last geometry: {n_model} cycles from the model's "
          f"density, {n_minao} from minao; energy {e_model:.10f} Hartree "
          f"(difference {e_model - e_minao:.1e})")
    with open(args.output, "w") as handle:
        json.dump(record, handle, indent=2)
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
