"""Model files: ``model.safetensors`` (weights) + ``config.json`` (everything to rebuild and to check).

Nothing is ever unpickled. Loading rebuilds the network from the JSON config and refuses, with a
clear error, a config of another format version, a basis layout that no longer matches, and a
weights file with a missing, unexpected, mis-shaped or non-finite tensor.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import torch
from ase.data import chemical_symbols
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import __version__
from .domain import TrainingDomain
from .energy import EnergyConfig, EnergyHead
from .nn.model import HamiltonianModel, ModelConfig
from .uncertainty import FeatureDistance, UncertaintyConfig
from .validation import InputError

FORMAT = "mlwfcalc-model"
#: Version 2: the SO(2) (edge-frame) network of :mod:`mlwfcalc.nn.model`. Version 1 (the e3nn
#: tensor-product network of mlwfcalc 0.1 before it) is refused with a message naming the fix.
FORMAT_VERSION = 2
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
ENERGY_WEIGHTS = "energy.safetensors"
UNCERTAINTY_WEIGHTS = "uncertainty.safetensors"
#: Where shipped models live: ``models/<name>/`` next to the package source (an editable or source
#: install), or the directory named by the environment variable ``MLWFCALC_MODELS``.
MODELS_DIR = Path(os.environ.get("MLWFCALC_MODELS", Path(__file__).resolve().parent.parent / "models"))


def model_config_dict(model: HamiltonianModel, functional: str, training: dict | None = None) -> dict:
    """The JSON config of a model: architecture, chemistry and provenance."""
    layout = model.layout
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "mlwfcalc_version": __version__,
        "model": model.config.to_dict(),
        "basis": model.config.basis,
        "functional": functional.lower(),
        "method": "RKS",
        "elements": [chemical_symbols[z] for z in model.config.elements],
        "charges": [0],
        "spins": [0],
        "shells": {chemical_symbols[z]: list(layout.element(z).shells) for z in model.config.elements},
        "units": {"positions": "Bohr", "fock": "Hartree"},
        "ao_convention": "pyscf-spherical; model frame (y, z, x); p shells [1, 2, 0]",
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "training": training or {},
    }


def save_model(model: HamiltonianModel, directory: str | Path, functional: str, training: dict | None = None,
               state: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``directory``; ``state`` overrides the weights (EMA)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in (state or model.state_dict()).items()}
    tmp = directory / (WEIGHTS + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": FORMAT})
    tmp.replace(directory / WEIGHTS)
    (directory / CONFIG).write_text(json.dumps(model_config_dict(model, functional, training), indent=2) + "\n")
    return directory


def resolve_model_path(name_or_path: str | Path) -> Path:
    """A directory holding a model: a path, or the name of a shipped model in ``models/``."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    shipped = MODELS_DIR / str(name_or_path)
    if shipped.is_dir():
        return shipped
    available = ", ".join(sorted(p.name for p in MODELS_DIR.glob("*") if (p / CONFIG).exists())) or "none"
    raise InputError(f"no model at {name_or_path!r}: give a directory with {WEIGHTS} and {CONFIG}, "
                     f"or a shipped model name (available: {available})")


def list_models() -> list[dict]:
    """Shipped models: one dict per model directory with ``name``, ``path`` and its config's key facts."""
    models = []
    for directory in sorted(p for p in MODELS_DIR.glob("*") if (p / CONFIG).exists()):
        try:
            config = read_config(directory)
        except InputError as err:
            models.append({"name": directory.name, "path": str(directory), "error": str(err)})
            continue
        models.append({"name": directory.name, "path": str(directory), "basis": config["basis"],
                       "functional": config["functional"], "elements": config["elements"],
                       "val_mae_uha": config.get("training", {}).get("val_mae_uha"),
                       "preliminary": config.get("preliminary"), "domain": config.get("domain")})
    return models


def read_config(directory: Path) -> dict:
    """Read and check ``config.json``; InputError names what is wrong."""
    try:
        config = json.loads((directory / CONFIG).read_text())
    except FileNotFoundError:
        raise InputError(f"{directory} has no {CONFIG}; a model directory holds {WEIGHTS} and {CONFIG}") from None
    except json.JSONDecodeError as err:
        raise InputError(f"{directory / CONFIG} is not valid JSON ({err}); the model file is corrupt") from None
    if config.get("format") != FORMAT:
        raise InputError(f"{directory / CONFIG} is not an mlwfcalc model config (format {config.get('format')!r})")
    if config.get("format_version") == 1:
        raise InputError(f"{directory} holds a format-1 model (the e3nn tensor-product network that mlwfcalc "
                         f"replaced by the SO(2) network of format {FORMAT_VERSION}): retrain it with this mlwfcalc "
                         "(`mlwfcalc train`, same data and TOML), or read it with mlwfcalc 0.1 at git commit 38b4cb6")
    if config.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{directory / CONFIG} has format version {config.get('format_version')}, this mlwfcalc "
                         f"{__version__} reads version {FORMAT_VERSION}; install the mlwfcalc that wrote it or retrain")
    try:
        ModelConfig(**config["model"])
    except (KeyError, TypeError) as err:
        raise InputError(f"{directory / CONFIG}: incompatible model section ({err}); retrain or use the matching "
                         "mlwfcalc version") from None
    return config


def weights_fingerprint(directory: str | Path) -> str:
    """SHA-256 of a model directory's network weights: ties an energy head to the network it was fitted on."""
    return hashlib.sha256((Path(directory) / WEIGHTS).read_bytes()).hexdigest()


def _load_tensors(path: Path, expected: dict[str, torch.Tensor], what: str) -> dict[str, torch.Tensor]:
    """Read a safetensors file and check it holds exactly ``expected``'s keys and shapes, all finite."""
    try:
        tensors = load_file(str(path))
    except FileNotFoundError:
        raise InputError(f"{path.parent} has no {path.name}") from None
    except (SafetensorError, OSError, ValueError) as err:
        raise InputError(f"{path} is corrupt or not a safetensors file ({err})") from None
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise InputError(f"{path} does not match its config: missing tensors {missing[:5]}, "
                         f"unexpected {unexpected[:5]}; the {what} file is corrupt or from another version")
    for key, value in tensors.items():
        if value.shape != expected[key].shape:
            raise InputError(f"{path}: tensor {key} has shape {tuple(value.shape)}, the config "
                             f"needs {tuple(expected[key].shape)}; the {what} file is corrupt")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise InputError(f"{path}: tensor {key} holds NaN or infinite values; the {what} is corrupt")
    return {k: v.to(expected[k].dtype) for k, v in tensors.items()}


def save_energy_head(head: EnergyHead, directory: str | Path, training: dict | None = None) -> Path:
    """Add an energy head to a model directory: ``energy.safetensors`` + an ``"energy"`` section in ``config.json``."""
    directory = resolve_model_path(directory)
    config = read_config(directory)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in head.state_dict().items()}
    tmp = directory / (ENERGY_WEIGHTS + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": FORMAT})
    tmp.replace(directory / ENERGY_WEIGHTS)
    config["energy"] = {"config": head.config.to_dict(), "network_sha256": weights_fingerprint(directory),
                        "units": {"energy": "Hartree", "forces": "Hartree/Bohr"}, "training": training or {}}
    _write_config(directory, config)
    return directory


def load_energy_head(directory: Path, config: dict, device: str | torch.device = "cpu") -> EnergyHead | None:
    """The model's energy head, or None when it has none; refuses a head fitted to other network weights."""
    section = config.get("energy")
    if section is None:
        return None
    try:
        head = EnergyHead(EnergyConfig(**section["config"]))
    except (KeyError, TypeError) as err:
        raise InputError(f"{directory / CONFIG}: incompatible energy section ({err}); refit the energy head "
                         "with `mlwfcalc train-energy`") from None
    if section.get("network_sha256") != weights_fingerprint(directory):
        raise InputError(f"{directory}: the energy head was fitted to other network weights than {WEIGHTS} holds; "
                         "refit it with `mlwfcalc train-energy`")
    head.load_state_dict(_load_tensors(directory / ENERGY_WEIGHTS, head.state_dict(), "energy head"))
    return head.to(device).eval()


def _write_config(directory: Path, config: dict) -> None:
    tmp = directory / (CONFIG + ".tmp")
    tmp.write_text(json.dumps(config, indent=2) + "\n")
    tmp.replace(directory / CONFIG)


def save_domain(directory: str | Path, domain: TrainingDomain, uncertainty: FeatureDistance | None = None) -> Path:
    """Write a model's training domain (``config.json``) and uncertainty (``uncertainty.safetensors``)."""
    directory = resolve_model_path(directory)
    config = read_config(directory)
    config["domain"] = domain.to_dict()
    config.pop("uncertainty", None)
    if uncertainty is not None:
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in uncertainty.state_dict().items()}
        tmp = directory / (UNCERTAINTY_WEIGHTS + ".tmp")
        save_file(tensors, str(tmp), metadata={"format": FORMAT})
        tmp.replace(directory / UNCERTAINTY_WEIGHTS)
        config["uncertainty"] = {"config": uncertainty.config.to_dict(), "network_sha256": weights_fingerprint(directory),
                                 "units": {"uncertainty": "Hartree (expected MAE of F)"}}
    _write_config(directory, config)
    return directory


def load_domain(directory: Path, config: dict) -> TrainingDomain | None:
    """The model's training domain; None, with a warning, for a model saved without one."""
    if "domain" not in config:
        warnings.warn(f"model {directory.name} has no recorded training domain, so nothing outside it is refused "
                      "and its numbers may be silently wrong there; record it with "
                      f"`mlwfcalc fit-domain {directory} TRAINING_DB`", UserWarning, stacklevel=3)
        return None
    return TrainingDomain.from_dict(config["domain"])


def load_uncertainty(directory: Path, config: dict, network: HamiltonianModel,
                     device: str | torch.device = "cpu") -> FeatureDistance | None:
    """The model's fitted uncertainty, or None; refuses one fitted to other network weights."""
    section = config.get("uncertainty")
    if section is None:
        return None
    try:
        estimator = FeatureDistance(UncertaintyConfig(**section["config"]))
    except (KeyError, TypeError) as err:
        raise InputError(f"{directory / CONFIG}: incompatible uncertainty section ({err}); refit it with "
                         "`mlwfcalc fit-domain`") from None
    if section.get("network_sha256") != weights_fingerprint(directory):
        raise InputError(f"{directory}: the uncertainty was fitted to other network weights than {WEIGHTS} holds; "
                         "refit it with `mlwfcalc fit-domain`")
    if estimator.config.width != network.invariant_width(estimator.config.features):
        raise InputError(f"{directory}: the uncertainty expects {estimator.config.width} features, the network gives "
                         f"{network.invariant_width(estimator.config.features)}; refit it with `mlwfcalc fit-domain`")
    estimator.load_state_dict(_load_tensors(directory / UNCERTAINTY_WEIGHTS, estimator.state_dict(), "uncertainty"))
    return estimator.to(device)


def load_network(name_or_path: str | Path, device: str | torch.device = "cpu",
                 dtype: torch.dtype | None = None) -> tuple[HamiltonianModel, dict]:
    """Rebuild a :class:`HamiltonianModel` from a model directory. Returns ``(network, config dict)``."""
    directory = resolve_model_path(name_or_path)
    config = read_config(directory)
    if config.get("preliminary"):
        warnings.warn(f"model {directory.name} is preliminary: {config['preliminary']} "
                      f"(see {directory / 'README.md'})", UserWarning, stacklevel=3)
    network = HamiltonianModel(ModelConfig(**config["model"]), dtype=torch.float64)
    shells = {chemical_symbols[z]: list(network.layout.element(z).shells) for z in network.config.elements}
    if config.get("shells") != shells:
        raise InputError(f"{directory}: the basis layout in {CONFIG} ({config.get('shells')}) differs from "
                         f"PySCF's {network.config.basis} here ({shells}); the model cannot be used with this PySCF")
    tensors = _load_tensors(directory / WEIGHTS, network.state_dict(), "model")
    network.load_state_dict(tensors)
    dtype = dtype or getattr(torch, config.get("dtype", "float32"))
    return network.to(device=device, dtype=dtype).eval(), config
