"""Per-structure uncertainty: how far a structure's atomic environments lie from the training ones.

Every atom's invariant features ``h_i`` (the energy head's inputs, ``(C,)``, from the same network
pass that gives F) are compared with the training atoms of its element by a Mahalanobis distance
with a shrunk covariance (a one-component Gaussian density of the training features per element):

    d_i^2 = |W_e (h_i - mu_e)|^2 / C,    W_e = ((1 - s) Sigma_e + s tr(Sigma_e) / C * I)^(-1/2)

The structure's score is ``sqrt(max_i d_i^2)`` (one atom in a strange environment makes its blocks
of F wrong) or ``sqrt(mean_i d_i^2)`` (a structure distorted all over); :mod:`mlwfcalc.training.domain_fit`
picks the aggregation and the shrinkage ``s`` that rank the validation errors best. A power law fitted
on the validation structures (least squares in log-log) turns the score into a quantity users can read,

    uncertainty = exp(a) * score^b,

the expected mean absolute error of what the model was trained on (``UncertaintyConfig.quantity``):

* ``"fock"``: the structure's predicted Kohn-Sham matrix elements, Hartree (Kohn-Sham models);
* ``"forces"``: its force components against the model's energy level, Hartree/Bohr (transfer models,
  :mod:`mlwfcalc.training.transfer`, whose labels are energies and forces of a correlated method and no F).

The threshold stored with the model is ``threshold_factor`` (default 2) times the mean error of the
validation structures, the figure on the model card: above it, the structure is expected to be more
than twice as wrong as the card says (a warning, counted). The **hard limit** is ``hard_limit_factor``
(default 4) times that mean error: past it errors many times the card's are expected, and the calculator,
``predict`` and the PySCF guess raise :class:`UncertainPredictionError` by default (measured against
actual errors on hot frames and bond scans in docs/benchmarks.md). Checking either is one comparison of
a number the network pass computes anyway.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from ase.units import Bohr, Hartree
from torch import nn

from .domain import OutOfDomainError
from .validation import InputError

AGGREGATIONS = ("max", "mean")
#: The fewest validation structures the calibration is fitted on.
MIN_CALIBRATION_STRUCTURES = 5
#: What the uncertainty estimates: description, atomic unit, and (factor, unit) for ASE and for people.
QUANTITIES = {"fock": {"what": "MAE of F", "unit": "Hartree", "ase": (Hartree, "eV"), "readable": (1e6, "micro-Hartree")},
              "forces": {"what": "force MAE", "unit": "Hartree/Bohr", "ase": (Hartree / Bohr, "eV/A"),
                         "readable": (1000 * Hartree / Bohr, "meV/A")}}


@dataclass
class UncertaintyConfig:
    """How the uncertainty is computed and calibrated.

    Attributes:
        elements: atomic numbers, one Gaussian per element.
        width: feature width ``C``.
        features: which invariants (``"invariants"``, see :meth:`~mlwfcalc.nn.model.HamiltonianModel.invariants`).
        quantity: what the uncertainty is the expected MAE of, ``"fock"`` or ``"forces"`` (module docstring).
        shrinkage: ``s``, the weight of the isotropic part of each covariance.
        aggregation: ``"max"`` or ``"mean"`` of the atoms' squared distances.
        log_scale, exponent: ``a`` and ``b`` of the calibration (natural log; score to Hartree).
        threshold_factor: the threshold is this times the validation structures' mean error.
        hard_limit_factor: the hard limit is this times the validation structures' mean error.
        threshold_hartree: the threshold itself, in the quantity's atomic unit (Hartree for F, Hartree/Bohr
            for forces).
        calibration: what the calibration was fitted on (counts, rank correlation), for the record.
    """

    elements: list[int]
    width: int
    features: str = "invariants"
    quantity: str = "fock"
    shrinkage: float = 0.01
    aggregation: str = "max"
    log_scale: float = 0.0
    exponent: float = 1.0
    threshold_factor: float = 2.0
    threshold_hartree: float = float("inf")
    hard_limit_factor: float = 4.0
    calibration: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.aggregation not in AGGREGATIONS:
            raise InputError(f"uncertainty aggregation {self.aggregation!r}: choose one of {AGGREGATIONS}")
        if not 0 < self.shrinkage <= 1:
            raise InputError(f"uncertainty shrinkage must lie in (0, 1], got {self.shrinkage}")
        if self.quantity not in QUANTITIES:
            raise InputError(f"uncertainty quantity {self.quantity!r}: choose one of {tuple(QUANTITIES)}")

    @property
    def hard_limit_hartree(self) -> float:
        """The hard limit in the quantity's atomic unit: ``hard_limit_factor`` times the validation mean
        error (``threshold_hartree / threshold_factor``); inf for an uncalibrated uncertainty."""
        return self.hard_limit_factor * self.threshold_hartree / self.threshold_factor

    def describe(self, value: float) -> str:
        """``value`` (atomic units) as people read it, e.g. ``"expected MAE of F 120 micro-Hartree"``."""
        quantity = QUANTITIES[self.quantity]
        factor, unit = quantity["readable"]
        return f"expected {quantity['what']} {factor * value:.1f} {unit}"

    def to_dict(self) -> dict:
        return asdict(self)


class FeatureDistance(nn.Module):
    """Expected error per structure (of F or of the forces) from the atoms' feature distances to the training atoms.

    Buffers (float64): ``mean`` ``(n_elements, C)`` and ``whitening`` ``(n_elements, C, C)``.
    """

    def __init__(self, config: UncertaintyConfig):
        super().__init__()
        self.config = config
        n, c = len(config.elements), config.width
        self.register_buffer("mean", torch.zeros(n, c, dtype=torch.float64))
        self.register_buffer("whitening", torch.eye(c, dtype=torch.float64).repeat(n, 1, 1))
        index = torch.full((max(config.elements) + 1,), -1, dtype=torch.long)
        index[config.elements] = torch.arange(n)
        self.register_buffer("element_index", index, persistent=False)

    def fit(self, features: torch.Tensor, numbers: torch.Tensor) -> None:
        """Per-element mean and whitening from training atoms' features ``(N, C)`` and numbers ``(N,)``."""
        features = features.detach().to("cpu", torch.float64)
        s = self.config.shrinkage
        for k, z in enumerate(self.config.elements):
            x = features[numbers.cpu() == z]
            if len(x) < 2:
                raise InputError(f"the uncertainty needs at least two training atoms of element {z}, got {len(x)}")
            covariance = torch.cov(x.T)
            covariance = (1 - s) * covariance + s * covariance.trace() / len(covariance) * torch.eye(len(covariance),
                                                                                                      dtype=x.dtype)
            values, vectors = torch.linalg.eigh(covariance)
            self.mean[k] = x.mean(0)
            self.whitening[k] = vectors / values.sqrt()

    def whiten(self, features: torch.Tensor, numbers: torch.Tensor) -> torch.Tensor:
        """``W_e (h_i - mu_e)`` ``(N, C)`` (float64) of atom features ``(N, C)`` with atomic numbers ``(N,)``."""
        features = features.detach().to(self.mean.device, torch.float64)
        element = self.element_index[numbers.to(self.mean.device)]
        return torch.bmm((features - self.mean[element])[:, None, :], self.whitening[element])[:, 0]

    def score(self, features: torch.Tensor, numbers: torch.Tensor, molecule: torch.Tensor,
              n_molecules: int) -> torch.Tensor:
        """Raw score ``(B,)`` (dimensionless) of each molecule from atom features ``(N, C)``."""
        squared = (self.whiten(features, numbers) ** 2).mean(dim=1)
        molecule = molecule.to(self.mean.device)
        out = torch.zeros(n_molecules, dtype=torch.float64, device=self.mean.device)
        if self.config.aggregation == "max":
            out = out.scatter_reduce(0, molecule, squared, reduce="amax", include_self=False)
        else:
            out = out.index_add(0, molecule, squared) / torch.bincount(molecule, minlength=n_molecules)
        return out.sqrt()

    def forward(self, features: torch.Tensor, numbers: torch.Tensor, molecule: torch.Tensor,
                n_molecules: int) -> torch.Tensor:
        """Expected mean absolute error ``(B,)`` of each molecule's F (Hartree) or forces (Hartree/Bohr)."""
        score = self.score(features, numbers, molecule, n_molecules)
        return torch.exp(self.config.log_scale + self.config.exponent * torch.log(score.clamp_min(1e-12)))

    def calibrate(self, scores: np.ndarray, errors: np.ndarray) -> None:
        """Fit ``log error = a + b log score`` on validation scores and actual MAEs (atomic units), set the threshold."""
        from scipy.stats import spearmanr

        scores, errors = np.asarray(scores, dtype=float), np.asarray(errors, dtype=float)
        if len(scores) < MIN_CALIBRATION_STRUCTURES:
            raise InputError(f"calibrating the uncertainty needs at least {MIN_CALIBRATION_STRUCTURES} validation "
                             f"structures, got {len(scores)}")
        slope, intercept = np.polyfit(np.log(np.maximum(scores, 1e-12)), np.log(np.maximum(errors, 1e-12)), 1)
        self.config.log_scale, self.config.exponent = float(intercept), float(slope)
        self.config.threshold_hartree = float(self.config.threshold_factor * errors.mean())
        self.config.calibration = {"n_structures": int(len(scores)),
                                   "spearman": float(spearmanr(scores, errors)[0]),
                                   "mean_error": float(errors.mean())}


class UncertainPredictionError(OutOfDomainError):
    """A prediction whose uncertainty passes the model's hard limit: errors many times the card's are
    expected. ``uncertainty`` and ``limit`` in the quantity's atomic unit; ``atoms`` the structure refused
    and, when a calculator refused it mid-run, ``last_good_atoms`` the last structure it computed."""

    def __init__(self, message: str, uncertainty: float, limit: float, atoms=None):
        super().__init__(message)
        self.uncertainty, self.limit, self.atoms = uncertainty, limit, atoms
        self.last_good_atoms = None


def check_hard_limit(uncertainty: float | None, estimator: "FeatureDistance | None", model_name: str, where: str,
                     atoms=None) -> None:
    """Raise :class:`UncertainPredictionError` when ``uncertainty`` (atomic units) passes the hard limit."""
    if uncertainty is None or estimator is None:
        return
    limit = estimator.config.hard_limit_hartree
    if uncertainty > limit:
        describe = estimator.config.describe
        raise UncertainPredictionError(
            f"{where}: {model_name}'s uncertainty ({describe(uncertainty)}) passes its hard limit "
            f"({describe(limit)}): errors many times its card's are expected here. Compute it exactly "
            "(MLWFCalculator(..., on_uncertain='scf'), or mode='scf'), or accept it with on_uncertain='warn'",
            uncertainty, limit, atoms)
