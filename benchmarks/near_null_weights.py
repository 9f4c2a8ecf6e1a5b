"""How much weight occupied orbitals carry on the basis's near-linear dependencies: PySCF's against a model's.

    python benchmarks/near_null_weights.py malondialdehyde-pbe-def2svp 300=work/mal/mal-T300.db \
        500=work/mal/mal-T500.db 900=work/mal/mal-T900.db [--n 12]

Per set (``LABEL=DATABASE``, held-out labels) and frame: the largest ``near_null_weight`` over the
occupied orbitals (:mod:`mlwfcalc.electronic`) of the converged PySCF F and of the model's F (predicted
with ``domain="warn"``), and the model's occupied-orbital-energy MAE. The table gives, per set, the
largest reference weight, the frames the check flags (weight above ``SPURIOUS_WEIGHT``) with their
weights and orbital errors, and the largest weight among the frames it passes. This is the measurement
behind ``SPURIOUS_WEIGHT``.
"""

import argparse
import warnings

import torch
from ase import Atoms
from ase.units import Bohr

from mlwfcalc.data import LabelledDataset
from mlwfcalc.domain import OutOfDomainWarning
from mlwfcalc.electronic import SPURIOUS_WEIGHT, SpuriousOrbitalWarning, solve_orbitals
from mlwfcalc.predictor import load_model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("sets", nargs="+", metavar="LABEL=DATABASE")
    parser.add_argument("--n", type=int, default=12, help="first N frames of each set (0: all)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model, device="cpu")
    print(f"model {args.model}; spurious above a weight of {SPURIOUS_WEIGHT}\n")
    print("| set | frames | largest reference weight | flagged frames: model weight (orbital-energy MAE, micro-Ha) "
          "| largest model weight among the others |")
    print("|---|---|---|---|---|")
    for spec in args.sets:
        label, path = spec.split("=", 1)
        samples = LabelledDataset(path).samples[:args.n or None]
        reference_max, flagged, passed_max = 0.0, [], 0.0
        for s in samples:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OutOfDomainWarning)
                warnings.simplefilter("ignore", SpuriousOrbitalWarning)
                p = model.predict(Atoms(s.numbers.numpy(), positions=s.positions.numpy() * Bohr), domain="warn")
            overlap, n_electrons = torch.as_tensor(p.overlap), p.mol.nelectron
            reference = solve_orbitals(s.fock, overlap, n_electrons)
            predicted = solve_orbitals(torch.as_tensor(p.fock), overlap, n_electrons)
            n = reference.n_occupied
            reference_max = max(reference_max, float(reference.near_null_weight[:n].max()))
            weight = float(predicted.near_null_weight[:n].max())
            error = 1e6 * float((predicted.energies[:n] - reference.energies[:n]).abs().mean())
            if weight > SPURIOUS_WEIGHT:
                flagged.append(f"{weight:.3f} ({error:,.0f})")
            else:
                passed_max = max(passed_max, weight)
        print(f"| {label} | {len(samples)} | {reference_max:.1e} | {len(flagged)}: {', '.join(flagged) or '-'} "
              f"| {passed_max:.3f} |")


if __name__ == "__main__":
    main()
