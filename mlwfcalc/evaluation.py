"""Accuracy of a model on a labelled set: F, orbital energies, orbital coefficients, HOMO-LUMO gap.

Orbitals on both sides come from the same exact PySCF overlap: ``F_pred C = S C e`` against
``F_ref C = S C e``. The orbital-coefficient similarity is PhiSNet's: the mean over occupied
orbitals of ``|c_pred . c_ref| / (|c_pred| |c_ref|)``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.units import Bohr, Debye, Hartree
from tqdm.auto import tqdm

from .data.dataset import LabelledDataset
from .electronic import dipole_moment, solve_orbitals
from .predictor import HamiltonianPredictor
from .validation import InputError


@dataclass
class EvaluationReport:
    """Errors averaged over the molecules of a set (micro-Hartree unless said otherwise)."""

    n_molecules: int
    fock_mae_uha: float
    fock_max_abs_uha: float
    orbital_energy_mae_uha: float
    orbital_cosine_percent: float
    homo_lumo_gap_mae_uha: float
    homo_lumo_gap_mae_mev: float
    dipole_mae_debye: float

    def table(self) -> str:
        rows = [("molecules", f"{self.n_molecules}"),
                ("MAE of F, all matrix elements", f"{self.fock_mae_uha:.1f} micro-Hartree"),
                ("max |error| of F", f"{self.fock_max_abs_uha:.1f} micro-Hartree"),
                ("MAE of occupied orbital energies", f"{self.orbital_energy_mae_uha:.1f} micro-Hartree"),
                ("mean |cosine| of occupied orbitals", f"{self.orbital_cosine_percent:.3f} %"),
                ("MAE of HOMO-LUMO gap", f"{self.homo_lumo_gap_mae_uha:.1f} micro-Hartree "
                                         f"({self.homo_lumo_gap_mae_mev:.2f} meV)"),
                ("mean |dipole error| (predicted density)", f"{self.dipole_mae_debye:.4f} Debye")]
        width = max(len(r[0]) for r in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def evaluate(model: HamiltonianPredictor, dataset: LabelledDataset, batch_size: int = 32, progress: bool = True,
             parity_plot: str | Path | None = None) -> EvaluationReport:
    """Compare the model's F and orbitals with the reference on every molecule of ``dataset``."""
    settings = dataset.settings
    if settings.basis != model.basis:
        raise InputError(f"dataset {dataset.path} is in basis {settings.basis}, the model predicts {model.basis}")
    if settings.xc != model.functional:
        raise InputError(f"dataset {dataset.path} was labelled with {settings.xc}, the model with {model.functional}")
    f_err, f_max, e_err, cosines, gap_err, dip_err = [], 0.0, [], [], [], []
    ref_sample, pred_sample = [], []
    rng = np.random.default_rng(0)
    for start in tqdm(range(0, len(dataset), batch_size), desc="evaluating", unit="batch", disable=not progress):
        samples = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        atoms = [Atoms(s.numbers.numpy(), positions=s.positions.numpy() * Bohr) for s in samples]
        moles = [model.make_mole(a) for a in atoms]
        predicted = model.predict_fock(atoms, moles)
        for sample, mol, fock in zip(samples, moles, predicted):
            ref = sample.fock
            error = (fock - ref).abs()
            f_err.append(float(error.mean()))
            f_max = max(f_max, float(error.max()))
            overlap = torch.as_tensor(mol.intor("int1e_ovlp"))
            orb_p = solve_orbitals(fock, overlap, mol.nelectron)
            orb_r = solve_orbitals(ref, overlap, mol.nelectron)
            n = orb_r.n_occupied
            e_err.append(float((orb_p.energies[:n] - orb_r.energies[:n]).abs().mean()))
            cp, cr = orb_p.coefficients[:, :n], orb_r.coefficients[:, :n]
            cosines.append(float(((cp * cr).sum(0).abs() / (cp.norm(dim=0) * cr.norm(dim=0))).mean()))
            gap = lambda o: float(o.energies[n] - o.energies[n - 1])  # noqa: E731
            gap_err.append(abs(gap(orb_p) - gap(orb_r)))
            dipole = dipole_moment(mol, orb_p.density_matrix())
            dip_err.append(float((dipole - sample.dipole).norm()))
            pick = rng.choice(ref.numel(), size=min(200, ref.numel()), replace=False)
            ref_sample.append(ref.reshape(-1)[pick].numpy())
            pred_sample.append(fock.reshape(-1)[pick].numpy())
    report = EvaluationReport(n_molecules=len(dataset), fock_mae_uha=1e6 * float(np.mean(f_err)),
                              fock_max_abs_uha=1e6 * f_max, orbital_energy_mae_uha=1e6 * float(np.mean(e_err)),
                              orbital_cosine_percent=100 * float(np.mean(cosines)),
                              homo_lumo_gap_mae_uha=1e6 * float(np.mean(gap_err)),
                              homo_lumo_gap_mae_mev=1e3 * Hartree * float(np.mean(gap_err)),
                              dipole_mae_debye=Bohr / Debye * float(np.mean(dip_err)))
    if parity_plot:
        _parity_plot(np.concatenate(ref_sample), np.concatenate(pred_sample), report, parity_plot)
    return report


def _parity_plot(ref: np.ndarray, pred: np.ndarray, report: EvaluationReport, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    ax1.scatter(ref, pred, s=2, alpha=0.4)
    lim = [min(ref.min(), pred.min()), max(ref.max(), pred.max())]
    ax1.plot(lim, lim, "k--", lw=0.8)
    ax1.set_xlabel("reference F element (Hartree)")
    ax1.set_ylabel("predicted F element (Hartree)")
    ax1.set_title(f"MAE {report.fock_mae_uha:.1f} micro-Hartree ({report.n_molecules} molecules)")
    err = 1e6 * np.abs(pred - ref)
    ax2.hist(np.log10(np.maximum(err, 1e-3)), bins=60)
    ax2.set_xlabel("log10 |error| (micro-Hartree)")
    ax2.set_ylabel("matrix elements (sample)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(report: EvaluationReport, path: str | Path, extra: dict | None = None) -> None:
    Path(path).write_text(json.dumps({**asdict(report), **(extra or {})}, indent=2) + "\n")
