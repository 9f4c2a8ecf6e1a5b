"""How the SCF cycle count of a warm start grows with the error of the predicted F.

    python benchmarks/scf_vs_fock_error.py --model ethanol-pbe-def2svp --dataset work/ethanol-test.db \
        [--n 5] [--threads 1]

For the first ``--n`` molecules of a label database (reference F stored), the guess is the density of
``F_ref + a (F_pred - F_ref)`` for a in 1 (the model), 0.5, 0.25, 0.1, 0.03: a model whose F errors
are ``a`` times the present ones, in the same directions. Prints the mean SCF cycles to conv_tol 1e-9
(the model's level of theory) against minao, so one can read off how much better F must get to
reach a given cycle ratio.
"""

import argparse
import statistics

import torch
from ase import Atoms
from ase.units import Bohr
from pyscf import lib

from mlwfcalc.data import LabelledDataset
from mlwfcalc.electronic import solve_orbitals
from mlwfcalc.pyscf import resolve_model
from scf_warm_start import run_scf

SCALES = (1.0, 0.5, 0.25, 0.1, 0.03)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ethanol-pbe-def2svp")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--n", type=int, default=5)
    parser.add_argument("--conv-tol", type=float, default=1e-9)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lib.num_threads(args.threads)
    model = resolve_model(args.model, "cpu")
    cycles = {"minao": [], **{a: [] for a in SCALES}}
    fock_mae = []
    for sample in LabelledDataset(args.dataset).samples[: args.n]:
        atoms = Atoms(sample.numbers.numpy(), positions=sample.positions.numpy() * Bohr)
        prediction = model.predict(atoms, energy=False)
        error = torch.as_tensor(prediction.fock) - sample.fock
        fock_mae.append(float(error.abs().mean()))
        cycles["minao"].append(run_scf(model, prediction.mol, "minao", args.conv_tol)[0])
        overlap = torch.as_tensor(prediction.overlap)
        for a in SCALES:
            guess = solve_orbitals(sample.fock + a * error, overlap, prediction.mol.nelectron).density_matrix()
            cycles[a].append(run_scf(model, prediction.mol, guess.numpy(), args.conv_tol)[0])
    minao = statistics.mean(cycles["minao"])
    mae = 1e6 * statistics.mean(fock_mae)
    print(f"model {args.model}; first {args.n} molecules of {args.dataset}; conv_tol {args.conv_tol}\n")
    print("| guess | F MAE (micro-Hartree) | mean cycles | cycles / minao | per molecule |")
    print("|---|---|---|---|---|")
    print(f"| minao | - | {minao:.2f} | 1.00 | {cycles['minao']} |")
    for a in SCALES:
        mean = statistics.mean(cycles[a])
        label = "the model" if a == 1.0 else f"{a} x the model's F error"
        print(f"| {label} | {a * mae:.0f} | {mean:.2f} | {mean / minao:.2f} | {cycles[a]} |")


if __name__ == "__main__":
    main()
