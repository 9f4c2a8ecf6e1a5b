"""Which frames of a large unlabelled pool to spend PySCF labels on.

Labels are the expensive step, so a pool of sampled frames (MD at several temperatures, normal-mode
distortions) is de-duplicated and then thinned to the frames that teach the model most:

* ``"fps"``: farthest-point sampling in the model's feature space (each structure described by the
  per-element mean and maximum of its atoms' whitened invariant features), started from the most
  uncertain frame: diverse frames, tails and middle alike;
* ``"uncertainty"``: the frames the model is least sure about (:mod:`mlwfcalc.uncertainty`), the
  active-learning step: label them, retrain, select again.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import torch
from ase import Atoms
from ase.units import Bohr
from tqdm.auto import tqdm

from ..domain import OutOfDomainWarning, hill_formula
from ..validation import InputError

SELECTION_METHODS = ("fps", "uncertainty")


def deduplicate(frames: Sequence[Atoms], tolerance_ang: float = 0.002) -> list[int]:
    """Indices of the frames kept: a frame whose interatomic distances all lie within ``tolerance_ang``
    (root mean square) of an earlier kept frame of the same formula and atom order is dropped."""
    kept: list[int] = []
    by_kind: dict[tuple, list[np.ndarray]] = {}
    for k, atoms in enumerate(frames):
        upper = np.triu_indices(len(atoms), 1)
        distances = np.linalg.norm(atoms.positions[:, None] - atoms.positions[None], axis=-1)[upper]
        seen = by_kind.setdefault(tuple(atoms.numbers), [])
        if seen and np.sqrt(((np.asarray(seen) - distances) ** 2).mean(axis=1)).min() < tolerance_ang:
            continue
        seen.append(distances)
        kept.append(k)
    return kept


def describe(model, frames: Sequence[Atoms], batch_size: int = 64,
             progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per structure: a descriptor ``(M, D)`` (per element of the model, mean and max over its atoms of
    the whitened invariant features; zeros for an element it lacks) and the uncertainty ``(M,)`` (Hartree, or
    Hartree/Bohr for a transfer model's force uncertainty).

    ``model`` is a :class:`~mlwfcalc.predictor.HamiltonianPredictor` with a fitted uncertainty.
    """
    estimator = model.uncertainty
    if estimator is None:
        raise InputError(f"selecting frames needs a model with a fitted uncertainty; run `mlwfcalc fit-domain "
                         f"{model.path} TRAINING_DB` first")
    elements = estimator.config.elements
    descriptors, uncertainties = [], []
    for start in tqdm(range(0, len(frames), batch_size), desc="describing the pool", unit="batch",
                      disable=not progress):
        chunk = list(frames[start:start + batch_size])
        for k, atoms in enumerate(chunk):
            model.check_atoms(atoms, where=f"frame {start + k}", domain="warn")
        moles = [model.make_mole(a) for a in chunk]
        positions = [torch.as_tensor(a.positions / Bohr) for a in chunk]
        with torch.no_grad():
            batch = model.graph_batch(chunk, positions, moles)
            out = model.model(batch)
            whitened = estimator.whiten(model.network.invariants(out.nodes, estimator.config.features), batch.numbers)
        whitened, molecule, numbers = whitened.cpu().numpy(), batch.molecule.cpu().numpy(), batch.numbers.cpu().numpy()
        for m in range(len(chunk)):
            parts = []
            for z in elements:
                rows = whitened[(molecule == m) & (numbers == z)]
                parts += [rows.mean(0), np.abs(rows).max(0)] if len(rows) else [np.zeros(whitened.shape[1])] * 2
            descriptors.append(np.concatenate(parts))
        uncertainties.append(out.uncertainty.numpy())
    return np.asarray(descriptors), np.concatenate(uncertainties)


def farthest_point_order(descriptors: np.ndarray, n: int, first: int = 0) -> list[int]:
    """``n`` indices by greedy farthest-point sampling (Euclidean) from ``first``."""
    n = min(n, len(descriptors))
    chosen = [first]
    distance = np.linalg.norm(descriptors - descriptors[first], axis=1)
    while len(chosen) < n:
        nxt = int(np.argmax(distance))
        chosen.append(nxt)
        distance = np.minimum(distance, np.linalg.norm(descriptors - descriptors[nxt], axis=1))
    return chosen


def select_frames(model, frames: Sequence[Atoms], n: int, method: str = "fps", batch_size: int = 64,
                  progress: bool = True) -> tuple[list[int], np.ndarray]:
    """Pick ``n`` frames of ``frames`` (already de-duplicated) by ``method``; returns their indices and the
    uncertainty of every frame of the pool. Frames outside the model's domain are scored, not refused."""
    if method not in SELECTION_METHODS:
        raise InputError(f"selection method {method!r}: choose one of {SELECTION_METHODS}")
    if n < 1:
        raise InputError(f"select at least one frame, got {n}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutOfDomainWarning)
        descriptors, uncertainty = describe(model, frames, batch_size, progress)
    if method == "uncertainty":
        return [int(k) for k in np.argsort(-uncertainty)[:n]], uncertainty
    return farthest_point_order(descriptors, n, first=int(np.argmax(uncertainty))), uncertainty


def pool_summary(frames: Sequence[Atoms]) -> str:
    """``"1200 frames of C2H6O"``-style line for a pool."""
    formulas: dict[str, int] = {}
    for atoms in frames:
        formula = hill_formula(atoms.numbers)
        formulas[formula] = formulas.get(formula, 0) + 1
    return ", ".join(f"{count} frames of {formula}" for formula, count in formulas.items())
