"""Accuracy of a model on a labelled set: F, orbital energies, orbital coefficients, HOMO-LUMO gap,
dipole, and (with an energy head at the set's level of theory) energies and forces; with the uncertainty
(when it estimates the F error) and the share of the set outside the model's training domain. A transfer
model (energies at a higher level) on a Kohn-Sham set is scored on F, orbitals and dipole: how far
fine-tuning moved them from the Kohn-Sham reference. Optionally (``scf_frames``) the SCF warm start:
PySCF's cycles from the predicted density against minao's, on a few molecules of the set.

Orbitals on both sides come from the same exact PySCF overlap: ``F_pred C = S C e`` against
``F_ref C = S C e``. The orbital-coefficient similarity is PhiSNet's: the mean over occupied
orbitals of ``|c_pred . c_ref| / (|c_pred| |c_ref|)``. With ``rotation_seed`` every molecule is
first turned by its own random rotation, references included (F by the AO Wigner matrices).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from ase import Atoms
from ase.units import Bohr, Debye, Hartree
from tqdm.auto import tqdm

from scipy.spatial.transform import Rotation

from ..data.dataset import LabelledDataset, Sample
from ..electronic import dipole_moment, solve_orbitals
from ..predictor import HamiltonianPredictor
from ..pyscf import reference_scf
from ..validation import InputError


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
    energy_mae_mev: float | None = None
    force_mae_mev_per_a: float | None = None
    mean_uncertainty_uha: float | None = None
    outside_domain_percent: float | None = None
    spurious_orbital_percent: float | None = None  # molecules with a spurious occupied orbital (electronic.py)
    overlap_subspace: float = 0.0  # the predicted F's orbitals were solved where the overlap eigenvalue >= this
    subspace_orbital_energy_cost_uha: float | None = None  # the subspace's own cost: the reference F solved there
    subspace_dipole_cost_debye: float | None = None  # against the whole basis (occupied energies, dipole)
    scf_molecules: int | None = None  # molecules of the SCF check (evaluate's scf_frames), and its results:
    scf_cycles_model: float | None = None  # mean PySCF cycles from the model's density
    scf_cycles_minao: float | None = None  # mean PySCF cycles from minao
    scf_cycle_ratio: float | None = None  # scf_cycles_model / scf_cycles_minao
    scf_max_energy_difference_hartree: float | None = None  # largest |E(from the model) - E(from minao)|
    scf_unconverged: int | None = None  # runs (either guess) that did not converge
    scf_worse_than_minao: int | None = None  # molecules whose SCF from the model's density took more cycles

    def rows(self) -> list[tuple[str, str]]:
        """``(metric, value with unit)`` pairs, the table's rows."""
        rows = [("molecules", f"{self.n_molecules}"),
                ("MAE of F, all matrix elements", f"{self.fock_mae_uha:.1f} micro-Hartree"),
                ("max |error| of F", f"{self.fock_max_abs_uha:.1f} micro-Hartree"),
                ("MAE of occupied orbital energies", f"{self.orbital_energy_mae_uha:.1f} micro-Hartree"),
                ("mean |cosine| of occupied orbitals", f"{self.orbital_cosine_percent:.3f} %"),
                ("MAE of HOMO-LUMO gap", f"{self.homo_lumo_gap_mae_uha:.1f} micro-Hartree "
                                         f"({self.homo_lumo_gap_mae_mev:.2f} meV)"),
                ("mean |dipole error| (predicted density)", f"{self.dipole_mae_debye:.4f} Debye")]
        if self.overlap_subspace:
            rows += [("predicted orbitals solved where overlap eigenvalues are", f">= {self.overlap_subspace:g}"),
                     ("the subspace's cost on the reference F: occupied energies",
                      f"{self.subspace_orbital_energy_cost_uha:.1f} micro-Hartree"),
                     ("the subspace's cost on the reference F: dipole", f"{self.subspace_dipole_cost_debye:.4f} Debye")]
        if self.spurious_orbital_percent is not None:
            rows.append(("with a spurious occupied orbital", f"{self.spurious_orbital_percent:.1f} %"))
        if self.energy_mae_mev is not None:
            rows += [("energy head: energy MAE", f"{self.energy_mae_mev:.2f} meV"),
                     ("energy head: force MAE (per component)", f"{self.force_mae_mev_per_a:.1f} meV/A")]
        if self.mean_uncertainty_uha is not None:
            rows.append(("mean uncertainty (expected MAE of F)", f"{self.mean_uncertainty_uha:.1f} micro-Hartree"))
        if self.outside_domain_percent is not None:
            rows.append(("outside the training domain", f"{self.outside_domain_percent:.0f} %"))
        if self.scf_molecules:
            rows += [("SCF cycles from the model's density / from minao",
                      f"{self.scf_cycle_ratio:.2f} ({self.scf_cycles_model:.2f} / {self.scf_cycles_minao:.2f}, "
                      f"{self.scf_molecules} molecules; {self.scf_worse_than_minao} took more cycles than from minao)"),
                     ("SCF: largest |E(model guess) - E(minao)|",
                      f"{self.scf_max_energy_difference_hartree:.1e} Hartree"
                      + (f", {self.scf_unconverged} runs NOT converged" if self.scf_unconverged else ""))]
        return rows

    def table(self) -> str:
        rows = self.rows()
        width = max(len(r[0]) for r in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def rotated(sample: Sample, rotation: np.ndarray, layout) -> Sample:
    """``sample`` turned by the (improper) rotation ``(3, 3)``: positions, forces, dipole and F (AO Wigner D)."""
    d = torch.as_tensor(layout.wigner_D(sample.numbers.tolist(), rotation))
    r = torch.as_tensor(rotation)
    forces = None if sample.forces is None else sample.forces @ r.T  # frames labelled without forces
    return replace(sample, positions=sample.positions @ r.T, fock=d @ sample.fock @ d.T, forces=forces,
                   dipole=r @ sample.dipole)


def evaluate(model: HamiltonianPredictor, dataset: LabelledDataset, batch_size: int = 32, progress: bool = True,
             parity_plot: str | Path | None = None, rotation_seed: int | None = None,
             indices: Sequence[int] | None = None, scf_frames: int = 0,
             scf_conv_tol: float = 1e-9) -> EvaluationReport:
    """Compare the model's F, orbitals (and energies, forces) with the reference on every molecule of ``dataset``
    (or those at ``indices``).

    ``rotation_seed``: turn each molecule by its own random rotation first (None: as stored).
    The predicted F's orbitals are solved as the model's predictions are (``model.overlap_subspace``), the
    reference's in the whole basis.
    Molecules outside the model's training domain are evaluated too, and counted.
    ``scf_frames``: also run the PySCF SCF at the model's level of theory (``scf_conv_tol``, Hartree) on that
    many evenly spaced molecules, once from the predicted density and once from minao: the warm start's
    cycle ratio, and the check that both end at the same energy. Two SCFs per molecule: the costly part.
    """
    indices = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
    if not indices:
        raise InputError("nothing to evaluate: the subset of the dataset is empty")
    if scf_frames < 0:
        raise InputError(f"scf_frames {scf_frames}: give the number of molecules for the SCF check (0: skip it)")
    settings = dataset.settings
    if settings.basis != model.basis:
        raise InputError(f"dataset {dataset.path} is in basis {settings.basis}, the model predicts {model.basis}")
    if settings.xc != model.functional:
        raise InputError(f"dataset {dataset.path} was labelled with {settings.xc}, the model with {model.functional}")
    f_err, f_max, e_err, cosines, gap_err, dip_err = [], 0.0, [], [], [], []
    energy_err, force_err, uncertainties, outside, spurious = [], [], [], 0, 0
    subspace_e_cost, subspace_dip_cost = [], []
    scf_positions = set(np.linspace(0, len(indices) - 1, min(scf_frames, len(indices))).round().astype(int).tolist()) \
        if scf_frames > 0 else set()
    scf_model, scf_minao, scf_worst, scf_unconverged = [], [], 0.0, 0
    ref_sample, pred_sample = [], []
    rng = np.random.default_rng(0)
    # one rotation per sample of the whole set, so a subset sees the molecules as the whole-set run does
    turns = Rotation.random(len(dataset), random_state=rotation_seed).as_matrix() if rotation_seed is not None else None
    head = model.energy_head is not None and model.model.energy_level == settings.name  # a transfer model's
    # energies follow its high level, not these labels: its F, orbitals and dipole are still compared with them
    f_uncertainty = model.uncertainty is not None and model.uncertainty.config.quantity == "fock"
    for start in tqdm(range(0, len(indices), batch_size), desc="evaluating", unit="batch", disable=not progress):
        chunk = indices[start:start + batch_size]
        samples = [dataset[i] if turns is None else rotated(dataset[i], turns[i], model.layout) for i in chunk]
        atoms = [Atoms(s.numbers.numpy(), positions=s.positions.numpy() * Bohr) for s in samples]
        if model.domain is not None:
            outside += sum(bool(model.domain.violations(a.numbers, a.positions)) for a in atoms)
        moles = [model.make_mole(a) for a in atoms]
        out = model.network_pass(atoms, moles, energy=head, forces=head)
        if out.uncertainty is not None and f_uncertainty:
            uncertainties += list(out.uncertainty)
        for k, (sample, mol) in enumerate(zip(samples, moles)):
            ref = sample.fock
            fock = torch.as_tensor(out.fock[k, :mol.nao, :mol.nao])
            error = (fock - ref).abs()
            f_err.append(float(error.mean()))
            f_max = max(f_max, float(error.max()))
            if head:
                energy_err.append(abs(float(out.energies[k]) - float(sample.energy)))
                if sample.forces is not None:  # frames labelled without forces score energies only
                    force_err.append(np.abs(out.forces[k] - sample.forces.numpy()).reshape(-1))
            overlap = torch.as_tensor(mol.intor("int1e_ovlp"))
            orb_p = solve_orbitals(fock, overlap, mol.nelectron, subspace=model.overlap_subspace)
            orb_r = solve_orbitals(ref, overlap, mol.nelectron)
            n = orb_r.n_occupied
            spurious += bool(orb_p.spurious_occupied())
            e_err.append(float((orb_p.energies[:n] - orb_r.energies[:n]).abs().mean()))
            cp, cr = orb_p.coefficients[:, :n], orb_r.coefficients[:, :n]
            cosines.append(float(((cp * cr).sum(0).abs() / (cp.norm(dim=0) * cr.norm(dim=0))).mean()))
            gap = lambda o: float(o.energies[n] - o.energies[n - 1])  # noqa: E731
            gap_err.append(abs(gap(orb_p) - gap(orb_r)))
            dipole = dipole_moment(mol, orb_p.density_matrix())
            dip_err.append(float((dipole - sample.dipole).norm()))
            if model.overlap_subspace:
                orb_s = solve_orbitals(ref, overlap, mol.nelectron, subspace=model.overlap_subspace)
                subspace_e_cost.append(float((orb_s.energies[:n] - orb_r.energies[:n]).abs().mean()))
                subspace_dip_cost.append(float((dipole_moment(mol, orb_s.density_matrix())
                                                - dipole_moment(mol, orb_r.density_matrix())).norm()))
            if start + k in scf_positions:
                (cycles_p, energy_p, ok_p), (cycles_r, energy_r, ok_r) = (
                    _scf(model, mol, guess, scf_conv_tol) for guess in (orb_p.density_matrix().numpy(), None))
                scf_model.append(cycles_p)
                scf_minao.append(cycles_r)
                scf_worst = max(scf_worst, abs(energy_p - energy_r))
                scf_unconverged += (not ok_p) + (not ok_r)
            pick = rng.choice(ref.numel(), size=min(200, ref.numel()), replace=False)
            ref_sample.append(ref.reshape(-1)[pick].numpy())
            pred_sample.append(fock.reshape(-1)[pick].numpy())
    report = EvaluationReport(n_molecules=len(indices), fock_mae_uha=1e6 * float(np.mean(f_err)),
                              fock_max_abs_uha=1e6 * f_max, orbital_energy_mae_uha=1e6 * float(np.mean(e_err)),
                              orbital_cosine_percent=100 * float(np.mean(cosines)),
                              homo_lumo_gap_mae_uha=1e6 * float(np.mean(gap_err)),
                              homo_lumo_gap_mae_mev=1e3 * Hartree * float(np.mean(gap_err)),
                              dipole_mae_debye=Bohr / Debye * float(np.mean(dip_err)),
                              energy_mae_mev=1e3 * Hartree * float(np.mean(energy_err)) if head else None,
                              force_mae_mev_per_a=(1e3 * Hartree / Bohr * float(np.concatenate(force_err).mean())
                                                   if head and force_err else None),
                              mean_uncertainty_uha=1e6 * float(np.mean(uncertainties)) if uncertainties else None,
                              outside_domain_percent=100 * outside / len(indices) if model.domain is not None else None,
                              spurious_orbital_percent=100 * spurious / len(indices),
                              overlap_subspace=model.overlap_subspace,
                              subspace_orbital_energy_cost_uha=(1e6 * float(np.mean(subspace_e_cost))
                                                                if subspace_e_cost else None),
                              subspace_dipole_cost_debye=(Bohr / Debye * float(np.mean(subspace_dip_cost))
                                                          if subspace_dip_cost else None))
    if scf_model:
        report = replace(report, scf_molecules=len(scf_model), scf_cycles_model=float(np.mean(scf_model)),
                         scf_cycles_minao=float(np.mean(scf_minao)),
                         scf_cycle_ratio=float(np.mean(scf_model) / np.mean(scf_minao)),
                         scf_max_energy_difference_hartree=scf_worst, scf_unconverged=scf_unconverged,
                         scf_worse_than_minao=int(np.sum(np.array(scf_model) > np.array(scf_minao))))
    if parity_plot:
        _parity_plot(np.concatenate(ref_sample), np.concatenate(pred_sample), report, parity_plot)
    return report


#: Overlap thresholds ``benchmarks/overlap_subspace.py`` tries by default (0: the whole basis).
SUBSPACE_THRESHOLDS = (0.0, 1e-3, 2e-3, 3e-3, 5e-3, 7e-3, 1e-2, 2e-2)
#: The chosen threshold is the smallest whose validation dipole error is within this factor of the best one's.
SUBSPACE_TOLERANCE = 1.03


def choose_overlap_subspace(model: HamiltonianPredictor, dataset: LabelledDataset, indices: Sequence[int],
                            thresholds: Sequence[float] = SUBSPACE_THRESHOLDS, rotation_seed: int | None = 0,
                            progress: bool = True) -> tuple[float, dict[float, EvaluationReport]]:
    """The overlap subspace to solve ``model``'s orbitals in (:func:`~mlwfcalc.electronic.solve_orbitals`),
    chosen on the molecules at ``indices`` of ``dataset`` (molecules the model never trained on): each of
    ``thresholds`` is evaluated there, and the smallest whose dipole MAE is within :data:`SUBSPACE_TOLERANCE`
    of the best is chosen (the dipole follows the occupied orbitals, and a larger threshold costs even exact
    orbitals more). Returns ``(threshold, {threshold: report})``; ``model.overlap_subspace`` is left as it was.
    """
    if not indices:
        raise InputError("no validation molecules to choose the overlap subspace on")
    kept, reports = model.overlap_subspace, {}
    try:
        for threshold in tqdm(sorted(set(float(t) for t in thresholds)), desc="thresholds", disable=not progress):
            model.overlap_subspace = threshold
            reports[threshold] = evaluate(model, dataset, progress=False, rotation_seed=rotation_seed, indices=indices)
    finally:
        model.overlap_subspace = kept
    best = min(r.dipole_mae_debye for r in reports.values())
    chosen = min(t for t, r in reports.items() if r.dipole_mae_debye <= SUBSPACE_TOLERANCE * best)
    return chosen, reports


def _scf(model: HamiltonianPredictor, mol, density: np.ndarray | None, conv_tol: float) -> tuple[int, float, bool]:
    """``(cycles, energy in Hartree, converged)`` of the PySCF SCF at the model's level of theory from
    ``density`` (``(nao, nao)``; None: PySCF's minao guess)."""
    mf = reference_scf(model, mol, conv_tol=conv_tol)
    mf.kernel(dm0=density)
    return mf.cycles, float(mf.e_tot), bool(mf.converged)


def groups_of(dataset: LabelledDataset, by: str) -> dict[str, list[int]]:
    """Sample indices of ``dataset`` per group: ``by="size"``, the number of heavy atoms (``"5 heavy atoms"``);
    ``by="family"``, each functional group the molecule contains (a molecule counts in each of its groups;
    ``"none of these"`` for the rest). Families need the samples' SMILES (labels of `mlwfcalc molecules` frames)."""
    groups: dict[str, list[int]] = {}
    if by == "size":
        for k, s in enumerate(dataset.samples):
            groups.setdefault(int((s.numbers > 1).sum()), []).append(k)
        return {f"{size} heavy atom{'s' * (size != 1)}": members for size, members in sorted(groups.items())}
    if by != "family":
        raise InputError(f"group by {by!r}: choose size or family")
    if not all(s.molecule for s in dataset.samples):
        raise InputError(f"{dataset.path} has frames without their molecule's SMILES: grouping by family needs "
                         "labels of `mlwfcalc molecules` / `sample --every-frame` frames; group by size instead")
    from ..data.molecules import FUNCTIONAL_GROUPS, families

    found = {}
    for k, s in enumerate(dataset.samples):
        if s.molecule not in found:
            found[s.molecule] = families(s.molecule) or ["none of these"]
        for name in found[s.molecule]:
            groups.setdefault(name, []).append(k)
    return {name: groups[name] for name in [*FUNCTIONAL_GROUPS, "none of these"] if name in groups}


def plot_trend(reports: dict[str, EvaluationReport], path: str | Path, title: str = "") -> None:
    """Errors against the sets' labels (temperatures in K when numeric): F, occupied orbital energies, forces
    (with an energy head), the SCF cycle ratio (when measured)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(reports)
    numeric = all(label.replace(".", "", 1).isdigit() for label in labels)
    x = [float(label) for label in labels] if numeric else list(range(len(labels)))
    series = [("F MAE (micro-Hartree)", [r.fock_mae_uha for r in reports.values()]),
              ("occupied orbital energy MAE (micro-Hartree)", [r.orbital_energy_mae_uha for r in reports.values()])]
    if all(r.force_mae_mev_per_a is not None for r in reports.values()):
        series.append(("force MAE (meV/A)", [r.force_mae_mev_per_a for r in reports.values()]))
    if all(r.scf_cycle_ratio is not None for r in reports.values()):
        series.append(("SCF cycles, model guess / minao", [r.scf_cycle_ratio for r in reports.values()]))
    fig, axes = plt.subplots(1, len(series), figsize=(4.2 * len(series), 3.6))
    for ax, (name, values) in zip(axes, series):
        ax.plot(x, values, "o-")
        ax.set_yscale("linear" if name.startswith("SCF") else "log")
        ax.set_ylabel(name)
        ax.set_xlabel("temperature of the test trajectory (K)" if numeric else "set")
        if not numeric:
            ax.set_xticks(x, labels, rotation=30)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


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


def write_report(report: EvaluationReport | dict[str, EvaluationReport], path: str | Path,
                 extra: dict | None = None) -> None:
    """One report as a flat JSON object, or several as ``{"sets": {label: report}}``, plus ``extra``."""
    body = asdict(report) if isinstance(report, EvaluationReport) else \
        {"sets": {label: asdict(r) for label, r in report.items()}}
    Path(path).write_text(json.dumps({**body, **(extra or {})}, indent=2) + "\n")
