"""Accuracy and cost of the two energy routes on held-out geometries (and of the exact SCF).

    python benchmarks/energy_routes.py --model water-pbe-def2svp --dataset work/water-test.db \
        [--n 200] [--threads 2]

Routes: the ML energy model (energy head; forces by autograd), the variational route (PySCF's
Kohn-Sham energy functional at the predicted density: one Fock build) and the Harris-Foulkes
energy (the same Fock build plus one diagonalisation). Errors against the label
database's PySCF energies and forces; the cost is the median wall time per molecule of one call
(ML: energy + forces; variational: prediction + E[P]; SCF: warm-started SCF alone, for scale).
"""

import argparse
import statistics
import time

import numpy as np
import torch
from ase import Atoms
from ase.units import Bohr, Hartree
from pyscf import lib

from mlwfcalc.data import LabelledDataset
from mlwfcalc.predictor import load_model
from mlwfcalc.pyscf import guess_dm, harris_energy, reference_scf, variational_energy


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="water-pbe-def2svp")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lib.num_threads(args.threads)
    model = load_model(args.model, device="cpu")
    samples = LabelledDataset(args.dataset).samples[: args.n]
    rows = {"ml": [], "variational": [], "harris": [], "scf": []}
    e_ml, f_ml, e_var, e_harris = [], [], [], []
    for k, s in enumerate(samples):
        atoms = Atoms(s.numbers.numpy(), positions=s.positions.numpy() * Bohr)
        start = time.perf_counter()
        p = model.predict(atoms, forces=True)
        rows["ml"].append(time.perf_counter() - start)
        e_ml.append(p.energy - float(s.energy))
        f_ml.append(p.forces - s.forces.numpy())
        start = time.perf_counter()
        p = model.predict(atoms, energy=False)
        e = variational_energy(model, p)
        rows["variational"].append(time.perf_counter() - start)
        e_var.append(e - float(s.energy))
        start = time.perf_counter()
        p = model.predict(atoms, energy=False)
        e = harris_energy(model, p)
        rows["harris"].append(time.perf_counter() - start)
        e_harris.append(e - float(s.energy))
        if k < 20:
            mf = reference_scf(model, p.mol, conv_tol=1e-9)
            start = time.perf_counter()
            mf.kernel(dm0=guess_dm(p.mol, model))
            rows["scf"].append(time.perf_counter() - start)
    mev, mev_a = 1000 * Hartree, 1000 * Hartree / Bohr
    e_ml, e_var, e_harris = np.array(e_ml) * mev, np.array(e_var) * mev, np.array(e_harris) * mev
    f_ml = np.concatenate([f.reshape(-1) for f in f_ml]) * mev_a
    print(f"model {args.model} on {len(samples)} molecules of {args.dataset}; {args.threads} threads\n")
    print("| route | energy MAE (meV) | energy max error (meV) | force MAE (meV/A) | ms per molecule |")
    print("|---|---|---|---|---|")
    print(f"| ML energy model | {np.abs(e_ml).mean():.3f} | {np.abs(e_ml).max():.2f} | {np.abs(f_ml).mean():.2f} | "
          f"{1000 * statistics.median(rows['ml'][1:]):.1f} |")
    print(f"| variational E_KS[P_pred] | {np.abs(e_var).mean():.3f} | {np.abs(e_var).max():.2f} | n/a | "
          f"{1000 * statistics.median(rows['variational'][1:]):.1f} |")
    print(f"| Harris-Foulkes at P_pred | {np.abs(e_harris).mean():.3f} | {np.abs(e_harris).max():.2f} | n/a | "
          f"{1000 * statistics.median(rows['harris'][1:]):.1f} |")
    print(f"| SCF from the model's guess (exact; first 20) | 0 | 0 | 0 | "
          f"{1000 * statistics.median(rows['scf'][1:]):.0f} |")
    print(f"\nvariational errors are all >= 0 (variational principle): {bool((e_var > -1e-6).all())}; "
          f"mean signed {e_var.mean():+.3f} meV; Harris mean signed {e_harris.mean():+.3f} meV")


if __name__ == "__main__":
    main()
