"""Energies, forces and dipoles against a high-level reference (issue 18): models, DFT and GFN2-xTB in one table.

    python benchmarks/transfer.py 300=work/cc/water-ccsdt-T300.db 500=... 900=... \
        --model water-ccsdt --model water-pbe-def2svp [--dft pbe/def2-svp] [--xtb] [--threads 2]

Each positional argument is ``LABEL=DATABASE``, a held-out set labelled by ``mlwfcalc label --method
ccsd(t)`` (or mp2, ccsd). Every geometry is randomly rotated (with its reference forces and dipole)
before any method sees it. Rows: each ``--model`` (its energy head, autograd forces, and the dipole
of its predicted density), ``--dft XC/BASIS`` computed here with PySCF (RKS, grids 3; its SCF
density's dipole), and ``--xtb`` (tblite GFN2-xTB, energy and forces; its dipole is a point-charge
one and is reported too). Columns per set: energy MAE raw and after removing one constant offset
per method (its mean error over all sets), force MAE per component, and the MAE of the dipole
vector's error norm. Units: meV, meV/A, Debye. Prints Markdown. For each model whose uncertainty
estimates force errors (a transfer model's), a second table: its mean uncertainty, the rank correlation
with the actual per-frame force MAE, and the share of frames above its threshold, per set.
"""

import argparse

import numpy as np
import torch
from ase import Atoms
from ase.units import Bohr, Debye, Hartree
from pyscf import lib
from scipy.spatial.transform import Rotation

from mlwfcalc.data import LabelledDataset
from mlwfcalc.electronic import dipole_moment
from mlwfcalc.predictor import load_model



def rotated_sets(pairs: list[str], seed: int) -> dict[str, list[tuple[Atoms, float, np.ndarray, np.ndarray]]]:
    """``{label: [(atoms in A, energy eV, forces eV/A, dipole e*A)]}``, each geometry randomly rotated."""
    rng = np.random.default_rng(seed)
    sets = {}
    for pair in pairs:
        label, _, path = pair.rpartition("=")
        rows = []
        for s in LabelledDataset(path, kohn_sham=False).samples:
            rotation = Rotation.random(random_state=rng).as_matrix()
            atoms = Atoms(s.numbers.numpy(), positions=s.positions.numpy() @ rotation.T * Bohr)
            rows.append((atoms, float(s.energy) * Hartree, s.forces.numpy() @ rotation.T * Hartree / Bohr,
                         s.dipole.numpy() @ rotation.T * Bohr))
        sets[label or path] = rows
    return sets


def model_method(name: str):
    model = load_model(name, device="cpu")

    def run(atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray, float | None]:
        (p,) = model.predict([atoms], forces=True, domain="warn")  # the table says how many lie outside
        dipole = dipole_moment(p.mol, torch.as_tensor(p.density_matrix)).numpy()
        forces_uncertainty = model.uncertainty is not None and model.uncertainty.config.quantity == "forces"
        uncertainty = p.uncertainty * Hartree / Bohr if forces_uncertainty else None  # eV/A
        threshold = model.uncertainty_threshold * Hartree / Bohr if forces_uncertainty else None
        return p.energy * Hartree, p.forces * Hartree / Bohr, dipole * Bohr, (uncertainty, threshold)

    return f"{name} (energy at {model.model.energy_level})", run


def dft_method(spec: str):
    from mlwfcalc.basis import BasisLayout
    from mlwfcalc.theory import LevelOfTheory

    xc, basis = spec.split("/")
    theory = LevelOfTheory(xc=xc, basis=basis, conv_tol=1e-10)

    def run(atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray, tuple]:
        mol = BasisLayout(theory.basis, atoms.numbers).make_mole(atoms.numbers, atoms.positions / Bohr)
        mf = theory.make_scf(mol)
        energy = mf.kernel()
        forces = -mf.nuc_grad_method().set(verbose=0).kernel()
        return energy * Hartree, forces * Hartree / Bohr, mf.dip_moment(unit="AU", verbose=0) * Bohr, (None, None)

    return f"{theory.name} (PySCF)", run


def xtb_method():
    from tblite.ase import TBLite

    def run(atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray, tuple]:
        atoms = atoms.copy()
        atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
        return atoms.get_potential_energy(), atoms.get_forces(), atoms.get_dipole_moment(), (None, None)

    return "GFN2-xTB (tblite)", run


def count_outside(name: str, sets: dict) -> str:
    """``"k of n outside the training domain"`` for model ``name`` over every geometry of ``sets``."""
    model = load_model(name, device="cpu")
    rows = [atoms for rows in sets.values() for atoms, *_ in rows]
    outside = sum(bool(model.check_atoms(atoms, domain="warn")) for atoms in rows)
    return f"{outside} of {len(rows)} outside the training domain"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="+", metavar="LABEL=DATABASE")
    parser.add_argument("--model", action="append", default=[], help="model name or directory (repeatable)")
    parser.add_argument("--dft", action="append", default=[], help="XC/BASIS run with PySCF, e.g. pbe/def2-svp")
    parser.add_argument("--xtb", action="store_true", help="also GFN2-xTB")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="rotation seed")
    parser.add_argument("--plot", help="PNG: force and offset-free energy MAE per set, one line per method")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lib.num_threads(args.threads)
    sets = rotated_sets(args.sets, args.seed)
    methods = [model_method(m) for m in args.model] + [dft_method(d) for d in args.dft] + \
        ([xtb_method()] if args.xtb else [])
    labels = list(sets)
    print(f"{', '.join(f'{k}: {len(v)}' for k, v in sets.items())} held-out geometries, randomly rotated (seed "
          f"{args.seed}); energy raw / offset-free (one offset per method over all sets) meV; forces meV/A; "
          "dipole |error| Debye\n")
    rows_header = "| method | " + " | ".join(f"{k}: E raw | {k}: E offset-free | {k}: F | {k}: dipole" for k in labels) + " |"
    rule = "|---|" + "---|---|---|---|" * len(labels)
    for model in args.model:
        print(f"{model}: {count_outside(model, sets)}")
    print()
    print(rows_header)
    print(rule)
    uncertainty_rows, curves = [], {}
    for name, run in methods:
        energy_errors, force_errors, dipole_errors, scored = {}, {}, {}, {}
        for label, rows in sets.items():
            results = [run(atoms) for atoms, *_ in rows]
            if results[0][3][0] is not None:  # (uncertainty, threshold, per-frame force MAE), eV/A
                scored[label] = [(r[3][0], r[3][1], np.abs(r[1] - ref[2]).mean()) for r, ref in zip(results, rows)]
            energy_errors[label] = np.array([r[0] - ref[1] for r, ref in zip(results, rows)]) * 1000
            force_errors[label] = np.concatenate([(r[1] - ref[2]).ravel() for r, ref in zip(results, rows)]) * 1000
            dipole_errors[label] = np.array([np.linalg.norm(r[2] - ref[3]) for r, ref in zip(results, rows)]) / Debye
        offset = np.concatenate(list(energy_errors.values())).mean()
        cells = [f"{np.abs(energy_errors[k]).mean():.1f} | {np.abs(energy_errors[k] - offset).mean():.2f} | "
                 f"{np.abs(force_errors[k]).mean():.1f} | {dipole_errors[k].mean():.3f}" for k in labels]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
        curves[name] = ([np.abs(energy_errors[k] - offset).mean() for k in labels],
                        [np.abs(force_errors[k]).mean() for k in labels])
        if scored:
            uncertainty_rows.append((name, scored))
    if args.plot:
        plot(curves, labels, args.plot)
    for name, scored in uncertainty_rows:
        from scipy.stats import spearmanr

        pooled = np.array([row for rows in scored.values() for row in rows])
        print(f"\n{name}: uncertainty (expected force MAE) against the actual per-frame force MAE; threshold "
              f"{1000 * pooled[0, 1]:.1f} meV/A; rank correlation over all sets {spearmanr(pooled[:, 0], pooled[:, 2])[0]:.2f}\n")
        print("| set | mean uncertainty (meV/A) | mean force MAE (meV/A) | rank correlation | above threshold |")
        print("|---|---|---|---|---|")
        for label, rows in scored.items():
            a = np.array(rows)
            print(f"| {label} | {1000 * a[:, 0].mean():.1f} | {1000 * a[:, 2].mean():.1f} | "
                  f"{spearmanr(a[:, 0], a[:, 2])[0]:.2f} | {100 * (a[:, 0] > a[:, 1]).mean():.0f} % |")


def plot(curves: dict[str, tuple[list[float], list[float]]], labels: list[str], path: str) -> None:
    """Offset-free energy MAE (meV) and force MAE (meV/A) against the sets (temperatures), log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, (energy, forces) in curves.items():
        for ax, values in zip(axes, (energy, forces)):
            ax.plot(labels, values, "o-", label=name)
    for ax, unit in zip(axes, ("energy MAE, offset-free (meV)", "force MAE (meV/A)")):
        ax.set_yscale("log")
        ax.set_ylabel(unit)
        ax.set_xlabel("test set (temperature, K)")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
