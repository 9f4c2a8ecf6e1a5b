"""Does the uncertainty know when the model is wrong? Rank correlation and flagged fractions per temperature.

    python benchmarks/uncertainty.py water-pbe-def2svp 300=work/water-T300.db 500=work/water-T500.db \
        700=work/water-T700.db 900=work/water-T900.db 1200=work/water-T1200.db --plot unc.png

Each set (``LABEL=DATABASE``: independent held-out trajectories, here GFN2-xTB MD at that temperature
with seeds never used for training) is randomly rotated frame by frame and predicted with
``domain="warn"``, so frames the domain check would refuse are scored too. Per frame: the model's
uncertainty (expected F MAE), the actual F MAE (against the rotated PySCF F), and the actual force
MAE of the energy head. The table gives, per set and pooled, the mean errors, the Spearman rank
correlation of uncertainty with each error, the fraction of frames above the model's stored
threshold, and the fraction the domain check refuses.
"""

import argparse
import warnings

import numpy as np
import torch
from ase import Atoms
from ase.units import Bohr, Hartree
from scipy.spatial.transform import Rotation
from scipy.stats import spearmanr

from mlwfcalc.data import LabelledDataset
from mlwfcalc.domain import OutOfDomainWarning
from mlwfcalc.predictor import load_model


def score_set(model, dataset, rng, batch_size=32):
    """Per frame ``(uncertainty Ha, F MAE Ha, force MAE eV/A, outside domain)`` of randomly rotated frames."""
    rows = []
    samples = dataset.samples
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        rotations = [Rotation.random(random_state=rng).as_matrix() for _ in chunk]
        atoms = [Atoms(s.numbers.numpy(), positions=s.positions.numpy() @ r.T * Bohr) for s, r in zip(chunk, rotations)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OutOfDomainWarning)
            predictions = model.predict(atoms, forces=model.energy_head is not None, domain="warn")
        for s, r, p in zip(chunk, rotations, predictions):
            d = model.layout.wigner_D(s.numbers.tolist(), r)
            reference = d @ s.fock.numpy() @ d.T
            f_mae = float(np.abs(p.fock - reference).mean())
            force_mae = (float(np.abs(p.forces - s.forces.numpy() @ r.T).mean()) * Hartree / Bohr
                         if p.forces is not None else np.nan)
            rows.append((p.uncertainty, f_mae, force_mae, bool(p.outside_domain)))
    return np.array(rows, dtype=float)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("sets", nargs="+", metavar="LABEL=DATABASE")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="rotation seed")
    parser.add_argument("--plot", help="PNG: uncertainty against actual F error, per set")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model, device="cpu")
    if model.uncertainty is None:
        parser.error(f"{args.model} has no fitted uncertainty: run `mlwfcalc fit-domain` first")
    if model.uncertainty.config.quantity != "fock":
        parser.error(f"{args.model}'s uncertainty estimates force errors (a transfer model): score it with "
                     "benchmarks/transfer.py")
    threshold = model.uncertainty_threshold
    rng = np.random.default_rng(args.seed)
    results = {}
    for item in args.sets:
        label, path = item.split("=", 1)
        results[label] = score_set(model, LabelledDataset(path), rng)
    print(f"model {args.model}: threshold {1e6 * threshold:.1f} micro-Hartree (expected F MAE)\n")
    print("| set | frames | F MAE (micro-Ha) | force MAE (meV/A) | mean uncertainty (micro-Ha) | "
          "Spearman vs F error | Spearman vs force error | above threshold | refused by the domain check |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, r in [*results.items(), ("pooled", np.concatenate(list(results.values())))]:
        rho_f = spearmanr(r[:, 0], r[:, 1])[0]
        rho_force = spearmanr(r[:, 0], r[:, 2])[0] if np.isfinite(r[:, 2]).all() else np.nan
        print(f"| {label} | {len(r)} | {1e6 * r[:, 1].mean():.1f} | {1e3 * r[:, 2].mean():.1f} | "
              f"{1e6 * r[:, 0].mean():.1f} | {rho_f:.2f} | {rho_force:.2f} | {100 * (r[:, 0] > threshold).mean():.0f} % | "
              f"{100 * r[:, 3].mean():.0f} % |")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
        for label, r in results.items():
            axes[0].scatter(1e6 * r[:, 0], 1e6 * r[:, 1], s=6, alpha=0.6, label=label)
            axes[1].scatter(1e6 * r[:, 0], 1e3 * r[:, 2], s=6, alpha=0.6, label=label)
        for ax, what in zip(axes, ("actual F MAE (micro-Hartree)", "actual force MAE (meV/A)")):
            ax.axvline(1e6 * threshold, color="k", ls="--", lw=0.8)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("uncertainty: expected F MAE (micro-Hartree)")
            ax.set_ylabel(what)
        axes[0].plot(*(2 * [[1e6 * min(r[:, 0].min() for r in results.values()),
                             1e6 * max(r[:, 0].max() for r in results.values())]]), "k:", lw=0.8)
        axes[0].legend(title="set", fontsize=8)
        fig.suptitle(f"{args.model}: uncertainty against actual error (dashed: stored threshold)")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"\nwrote {args.plot}")


if __name__ == "__main__":
    main()
