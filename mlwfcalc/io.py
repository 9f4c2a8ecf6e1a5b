"""Model files: one :class:`~mlwfcalc.model.MLWFModel` per directory, saved and read in one call.

``model.safetensors`` (network weights), optional ``energy.safetensors`` (energy head) and
``uncertainty.safetensors``, and ``config.json`` (everything to rebuild and to check: architecture,
level of theory, basis layout, training domain, provenance; the head and the uncertainty carry the
SHA-256 of the network weights they were fitted to). Nothing is ever unpickled. Reading rebuilds
from the JSON config and refuses, with a clear error, a config of another format version, a basis
layout that no longer matches, a part fitted to other network weights, and a weights file with a
missing, unexpected, mis-shaped or non-finite tensor.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import asdict
from pathlib import Path

import torch
from ase.data import chemical_symbols
from ase.formula import Formula
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import __version__
from .domain import TrainingDomain
from .energy import EnergyConfig, EnergyHead
from .model import MLWFModel
from .notices import notice
from .nn.model import HamiltonianModel, ModelConfig
from .theory import LevelOfTheory
from .uncertainty import QUANTITIES, FeatureDistance, UncertaintyConfig
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


#: Sections of a model's record kept in config.json as they are (MLWFModel's docstring says what each holds).
RECORD_SECTIONS = ("transfer", "functional_fit", "orbital_subspace", "energy_route")

def model_config_dict(model: MLWFModel) -> dict:
    """The JSON config of a model: architecture, chemistry, level of theory, domain and provenance.

    The sections of the energy head and the uncertainty get their network fingerprint in :func:`save_model`.
    """
    network = model.network
    elements = network.config.elements
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "mlwfcalc_version": __version__,
        "model": network.config.to_dict(),
        "basis": network.config.basis,
        "functional": model.theory.xc,
        "method": model.theory.method,
        "theory": asdict(model.theory),
        "elements": [chemical_symbols[z] for z in elements],
        "charges": model.charges,
        "spins": [0],
        "shells": {chemical_symbols[z]: list(network.layout.element(z).shells) for z in elements},
        "units": {"positions": "Bohr", "fock": "Hartree"},
        "ao_convention": "pyscf-spherical; model frame (y, z, x); p shells [1, 2, 0]",
        "dtype": str(next(network.parameters()).dtype).replace("torch.", ""),
        "training": model.record.get("training", {}),
    }
    if model.record.get("preliminary"):
        config["preliminary"] = model.record["preliminary"]
    for key in RECORD_SECTIONS:
        if model.record.get(key):
            config[key] = model.record[key]
    if model.energy_head is not None:
        config["energy"] = {"config": model.energy_head.config.to_dict(),
                            "level": model.energy_level,
                            "units": {"energy": "Hartree", "forces": "Hartree/Bohr"},
                            "training": model.record.get("energy_training", {})}
    if model.domain is not None:
        config["domain"] = model.domain.to_dict()
    if model.uncertainty is not None:
        quantity = QUANTITIES[model.uncertainty.config.quantity]
        config["uncertainty"] = {"config": model.uncertainty.config.to_dict(),
                                 "units": {"uncertainty": f"{quantity['unit']} (expected {quantity['what']})"}}
    return config


def _write_tensors(module: torch.nn.Module, path: Path) -> None:
    """``module``'s state as a safetensors file, written atomically."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": FORMAT})
    tmp.replace(path)


def save_model(model: MLWFModel, directory: str | Path) -> Path:
    """Write the whole model into ``directory`` (created if needed) in one call.

    Each file is replaced atomically, ``config.json`` last; a part the model does not have (an energy
    head, an uncertainty) has its stale file removed, so a directory never mixes two models.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _write_tensors(model.network, directory / WEIGHTS)
    config = model_config_dict(model)
    fingerprint = weights_fingerprint(directory)
    for part, filename, section in ((model.energy_head, ENERGY_WEIGHTS, "energy"),
                                    (model.uncertainty, UNCERTAINTY_WEIGHTS, "uncertainty")):
        if part is None:
            (directory / filename).unlink(missing_ok=True)
        else:
            _write_tensors(part, directory / filename)
            config[section]["network_sha256"] = fingerprint
    tmp = directory / (CONFIG + ".tmp")
    tmp.write_text(json.dumps(config, indent=2) + "\n")
    tmp.replace(directory / CONFIG)
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
    """Shipped models: one dict per model directory with ``name``, ``path`` and its config's key facts
    (``energy_level``: the level of its energies and forces, None without an energy head; ``transfer``:
    fine-tuned on a higher level than its F's)."""
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
                       "preliminary": config.get("preliminary"), "domain": config.get("domain"),
                       "energy_level": config.get("energy", {}).get("level"),
                       "transfer": bool(config.get("transfer"))})
    return models


def models_covering(formula: str, exclude: str | None = None) -> list[str]:
    """Shipped models whose domain contains ``formula`` (a Hill formula), by name, in the order
    ``model="auto"`` prefers them: the per-molecule models (the formula seen in training) before the
    chemical-space ones (its elements, atom and heavy-atom counts seen), Kohn-Sham models before transfer
    models, then alphabetical. Geometry is not looked at: the domain's distance check does that."""
    found = []
    for entry in list_models():
        domain = entry.get("domain")
        if domain is None or entry["name"] == exclude:
            continue
        domain = TrainingDomain.from_dict(domain)
        if domain.compositions == "formulas" and formula in domain.formulas:
            found.append((False, entry["transfer"], entry["name"]))
        elif domain.compositions == "elements" and _composition_inside(domain, Formula(formula).count()):
            found.append((True, entry["transfer"], entry["name"]))
    return [name for *_, name in sorted(found)]


def _composition_inside(domain: TrainingDomain, counts: dict[str, int]) -> bool:
    """Whether a chemical-space domain saw these elements, this many atoms and this many heavy atoms."""
    atoms = sum(counts.values())
    heavy = atoms - counts.get("H", 0)
    return set(counts) <= set(domain.elements) and domain.n_atoms[0] <= atoms <= domain.n_atoms[1] and \
        (domain.n_heavy_atoms is None or domain.n_heavy_atoms[0] <= heavy <= domain.n_heavy_atoms[1])


#: The README section that says how to make a model for molecules no shipped model covers.
MAKE_A_MODEL = "README.md, 'Make a model'"


def models_that_fit(formula: str, model_name: str | None = None) -> str:
    """A sentence naming the shipped models (other than ``model_name``) that cover ``formula``."""
    others = models_covering(formula, exclude=model_name)
    return (f" Model(s) trained for {formula}: {', '.join(others)}." if others else
            f" No shipped model covers {formula}: train one ({MAKE_A_MODEL}).")


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


def _read_part(directory: Path, config: dict, section: str, make, filename: str, fix: str):
    """An optional fitted part (energy head, uncertainty) from its config section and weights, or None."""
    if section not in config:
        return None
    try:
        part = make(config[section]["config"])
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"{directory / CONFIG}: incompatible {section} section ({err}); refit it with "
                         f"`mlwfcalc {fix}`") from None
    if config[section].get("network_sha256") != weights_fingerprint(directory):
        raise InputError(f"{directory}: the {section} part was fitted to other network weights than {WEIGHTS} "
                         f"holds; refit it with `mlwfcalc {fix}`")
    part.load_state_dict(_load_tensors(directory / filename, part.state_dict(), section))
    return part


def _theory(config: dict) -> LevelOfTheory:
    """The level of theory; configs written before the ``"theory"`` section keep it in other keys."""
    if "theory" in config:
        return LevelOfTheory(**config["theory"])
    return LevelOfTheory(xc=config.get("functional", "pbe"), basis=config["basis"],
                         grid_level=int(config.get("training", {}).get("grid_level", 3)))


def read_model(name_or_path: str | Path, device: str | torch.device = "cpu",
               dtype: torch.dtype | None = None) -> tuple[MLWFModel, Path]:
    """Read a model directory (or shipped model name) in one call. Returns ``(model, directory)``.

    ``dtype`` is the network's (default: the one it was trained in); the energy head and the
    uncertainty stay float64. A preliminary model warns (once per process); a model without a training domain warns
    that nothing will be refused.
    """
    directory = resolve_model_path(name_or_path)
    config = read_config(directory)
    if config.get("preliminary"):
        notice(f"preliminary {directory.resolve()}", f"{directory.name} is a preliminary model: see "
               f"`mlwfcalc models` for what it is fit for, and its card {directory / 'README.md'}")
    network = HamiltonianModel(ModelConfig(**config["model"]), dtype=torch.float64)
    shells = {chemical_symbols[z]: list(network.layout.element(z).shells) for z in network.config.elements}
    if config.get("shells") != shells:
        raise InputError(f"{directory}: the basis layout in {CONFIG} ({config.get('shells')}) differs from "
                         f"PySCF's {network.config.basis} here ({shells}); the model cannot be used with this PySCF")
    network.load_state_dict(_load_tensors(directory / WEIGHTS, network.state_dict(), "model"))
    network = network.to(dtype=dtype or getattr(torch, config.get("dtype", "float32"))).eval()
    head = _read_part(directory, config, "energy", lambda c: EnergyHead(EnergyConfig(**c)), ENERGY_WEIGHTS,
                      "train-energy")
    uncertainty = _read_part(directory, config, "uncertainty", lambda c: FeatureDistance(UncertaintyConfig(**c)),
                             UNCERTAINTY_WEIGHTS, "fit-domain")
    if "domain" in config:
        domain = TrainingDomain.from_dict(config["domain"])
    else:
        domain = None
        warnings.warn(f"model {directory.name} has no recorded training domain, so nothing outside it is refused "
                      "and its numbers may be silently wrong there; record it with "
                      f"`mlwfcalc fit-domain {directory} TRAINING_DB`", UserWarning, stacklevel=3)
    record = {"training": config.get("training", {}), "charges": config.get("charges", [0])}
    if "energy" in config:
        record["energy_training"] = config["energy"].get("training", {})
    if config.get("preliminary"):
        record["preliminary"] = config["preliminary"]
    for key in RECORD_SECTIONS:
        if config.get(key):
            record[key] = config[key]
    try:
        model = MLWFModel(network, _theory(config), head, uncertainty, domain, record)
    except InputError as err:
        raise InputError(f"model {directory}: {err}") from None
    return model.to(device).eval(), directory
