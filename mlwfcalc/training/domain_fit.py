"""Measure a trained model's training domain and fit its uncertainty, on the model's own data split.

``mlwfcalc train`` runs this on its best model; ``mlwfcalc fit-domain MODEL DATASET`` runs it on any
model directory (older models, or another split). The domain comes from the training structures,
the uncertainty's Gaussians from the training atoms' features, and from the validation structures'
actual errors both the choice of shrinkage and aggregation (the pair of ``SHRINKAGES`` x
``AGGREGATIONS`` whose score ranks those errors best, Spearman) and the calibration. The errors are
those of F for a Kohn-Sham model, and of the forces for a transfer model (``quantity="forces"``: its
labels are a correlated method's energies and forces, and its energy is what it was trained for).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from ase import Atoms
from ase.units import Bohr
from tqdm.auto import tqdm

from ..data.dataset import LabelledDataset, Sample
from ..domain import DEFAULT_MARGIN_ANG, TrainingDomain
from ..io import save_model
from ..predictor import HamiltonianPredictor
from ..uncertainty import AGGREGATIONS, MIN_CALIBRATION_STRUCTURES, FeatureDistance, UncertaintyConfig
from ..validation import InputError

#: Covariance shrinkages tried (see :mod:`mlwfcalc.uncertainty`).
SHRINKAGES = (0.001, 0.01, 0.1)


def _features_and_errors(model: HamiltonianPredictor, samples: Sequence[Sample], features: str, batch_size: int,
                         progress: bool, desc: str, quantity: str | None = "fock"
                         ) -> tuple[torch.Tensor, torch.Tensor, list[tuple], np.ndarray]:
    """Atom features ``(N, C)`` (float64), numbers ``(N,)``, per batch ``(features, numbers, molecule, B)``,
    and each structure's MAE ``(M,)`` of ``quantity``: F (Hartree), forces (Hartree/Bohr), or None (not computed)."""
    all_features, all_numbers, batches, errors = [], [], [], []
    for start in tqdm(range(0, len(samples), batch_size), desc=desc, unit="batch", disable=not progress):
        chunk = samples[start:start + batch_size]
        atoms = [Atoms(s.numbers.numpy(), positions=s.positions.numpy() * Bohr) for s in chunk]
        moles = [model.make_mole(a) for a in atoms]
        with torch.no_grad():
            batch = model.graph_batch(atoms, [s.positions for s in chunk], moles)
            fock, nodes = model.network.fock_and_nodes(batch)
            invariants = model.network.invariants(nodes, features).to("cpu", torch.float64)
        if quantity == "fock":
            fock = fock.to("cpu", torch.float64)
            errors += [float((fock[k, :m.nao, :m.nao] - s.fock).abs().mean()) for k, (s, m) in enumerate(zip(chunk, moles))]
        elif quantity == "forces":
            predicted = model.network_pass(atoms, moles, forces=True).forces
            errors += [float(np.abs(f - s.forces.numpy()).mean()) for f, s in zip(predicted, chunk)]
        numbers = batch.numbers.cpu()
        all_features.append(invariants)
        all_numbers.append(numbers)
        batches.append((invariants, numbers, batch.molecule.cpu(), len(chunk)))
    return torch.cat(all_features), torch.cat(all_numbers), batches, np.asarray(errors)


def fit_domain(model: HamiltonianPredictor, dataset: LabelledDataset, train_index: Sequence[int],
               val_index: Sequence[int], compositions: str = "formulas", margin_ang: float = DEFAULT_MARGIN_ANG,
               config: UncertaintyConfig | None = None, threshold_factor: float = 2.0, batch_size: int = 32,
               quantity: str = "fock", progress: bool = True) -> tuple[TrainingDomain, FeatureDistance | None, dict]:
    """The domain of the training split, and the uncertainty fitted on it and calibrated on the validation split.

    Returns ``(domain, uncertainty, summary)``; ``summary`` holds the calibration figures. With fewer
    than ``MIN_CALIBRATION_STRUCTURES`` validation structures there is nothing to calibrate on: the
    uncertainty is None (and the summary says so). ``config`` fixes the uncertainty's settings instead of
    choosing them; ``threshold_factor``: the threshold is this times the validation MAE; ``quantity``: the
    error calibrated on, ``"fock"`` (needs Kohn-Sham labels) or ``"forces"`` (needs forces and an energy head).
    """
    train = [dataset[int(i)] for i in train_index]
    val = [dataset[int(i)] for i in val_index]
    domain = TrainingDomain.from_structures(((s.numbers.numpy(), s.positions.numpy() * Bohr) for s in train),
                                            compositions=compositions, margin_ang=margin_ang)
    summary = {"n_train_structures": len(train), "formulas": list(domain.formulas)}
    if len(val) < MIN_CALIBRATION_STRUCTURES:
        summary["uncertainty"] = (f"not fitted: {len(val)} validation structures, calibrating needs "
                                  f"{MIN_CALIBRATION_STRUCTURES}")
        return domain, None, summary
    from scipy.stats import spearmanr

    features = config.features if config else "invariants"
    quantity = config.quantity if config else quantity
    if quantity == "forces" and model.energy_head is None:
        raise InputError(f"{model.name} has no energy head: its uncertainty cannot be calibrated on forces")
    train_features, train_numbers, _, _ = _features_and_errors(model, train, features, batch_size, progress,
                                                               "domain: training features", quantity=None)
    _, _, batches, errors = _features_and_errors(model, val, features, batch_size, progress,
                                                 "domain: validation errors", quantity)
    candidates = [config] if config else [
        UncertaintyConfig(elements=list(model.network.config.elements), width=model.network.invariant_width(features),
                          features=features, quantity=quantity, shrinkage=shrinkage, aggregation=aggregation,
                          threshold_factor=threshold_factor)
        for shrinkage in SHRINKAGES for aggregation in AGGREGATIONS]
    best = None
    for candidate in candidates:
        estimator = FeatureDistance(candidate)
        estimator.fit(train_features, train_numbers)
        scores = torch.cat([estimator.score(*b) for b in batches]).numpy()
        rank = spearmanr(scores, errors)[0]
        if best is None or rank > best[0]:
            best = (rank, estimator, scores)
    _, estimator, scores = best
    estimator.calibrate(scores, errors)
    summary.update(estimator.config.calibration, threshold=estimator.config.threshold_hartree,
                   threshold_text=estimator.config.describe(estimator.config.threshold_hartree), quantity=quantity,
                   shrinkage=estimator.config.shrinkage, aggregation=estimator.config.aggregation)
    return domain, estimator.to(model.device), summary


def fit_and_save_domain(model: HamiltonianPredictor, dataset: LabelledDataset, train_index: Sequence[int],
                        val_index: Sequence[int], **kwargs) -> dict:
    """:func:`fit_domain`, then write both into the model directory; returns the summary."""
    model.model.domain, model.model.uncertainty, summary = fit_domain(model, dataset, train_index, val_index,
                                                                      **kwargs)
    save_model(model.model, model.path)
    return summary
