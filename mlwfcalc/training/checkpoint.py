"""A run directory (:mod:`mlwfcalc.training.trainer` lists its files): atomic checkpoints in safetensors +
JSON, the checks a run makes before it resumes (the same labels, the same validation molecules) or starts
from a model's weights (none of its validation molecules seen by them), ``log.csv`` and the learning-curve
PNG. Shared by the trainer and the fine-tuning (:mod:`mlwfcalc.training.transfer`).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..data.dataset import LabelledDataset
from ..validation import InputError

CHECKPOINT = "checkpoint.safetensors"
CHECKPOINT_META = "checkpoint.json"


def write_checkpoint(output: Path, modules: dict[str, torch.nn.Module], optimizer: torch.optim.Optimizer,
                     meta: dict) -> None:
    """Save modules' and the optimiser's tensors (safetensors) and ``meta`` plus the optimiser's param
    groups (JSON) into ``output``, atomically: temporary files first, then renamed."""
    output.mkdir(parents=True, exist_ok=True)
    tensors = {f"{name}.{k}": v for name, module in modules.items() for k, v in module.state_dict().items()}
    for index, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            tensors[f"optim.{index}.{name}"] = torch.as_tensor(value)
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {**meta, "param_groups": optimizer.state_dict()["param_groups"]}
    tmp_tensors = output / (CHECKPOINT + ".tmp")
    save_file(tensors, str(tmp_tensors), metadata={"step": str(meta.get("step", ""))})
    tmp_meta = output / (CHECKPOINT_META + ".tmp")
    tmp_meta.write_text(json.dumps(meta, indent=1))
    tmp_tensors.replace(output / CHECKPOINT)
    tmp_meta.replace(output / CHECKPOINT_META)


def read_checkpoint_meta(output: Path) -> dict:
    """The JSON part of the checkpoint in ``output``."""
    return json.loads((output / CHECKPOINT_META).read_text())


def load_checkpoint(output: Path, modules: dict[str, torch.nn.Module], optimizer: torch.optim.Optimizer) -> dict:
    """Restore what :func:`write_checkpoint` saved into ``modules`` (same names) and ``optimizer``; returns meta."""
    meta = read_checkpoint_meta(output)
    tensors = load_file(str(output / CHECKPOINT))
    for name, module in modules.items():
        prefix = f"{name}."
        module.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return meta


def check_same_labels(meta: dict, dataset: LabelledDataset, output: Path) -> None:
    """Refuse to resume the run in ``output`` (checkpoint metadata ``meta``) on labels other than its own:
    a database that gained or lost rows since would silently move molecules between the splits."""
    saved = meta.get("dataset_fingerprint")
    if saved is not None and saved != dataset.fingerprint:
        raise InputError(f"{dataset.path} changed since the run in {output} started ({meta.get('dataset_size')} "
                         f"labelled geometries then, {len(dataset)} now), so its train/validation split would "
                         "change; resume on a copy of the labels as they were, or start a new run")


def check_same_validation(meta: dict, validation: list[str], output: Path) -> None:
    """Refuse to resume the run in ``output`` (checkpoint metadata ``meta``) when this split's
    ``validation`` molecules (SMILES) are not the ones it was validated on: the split rule changed since."""
    if "val_molecules" in meta and meta["val_molecules"] != validation:
        raise InputError(f"{output} holds a run validated on other molecules than this split's (the split "
                         "rule changed since it started); start a new run")


def molecules_seen_by(record: dict, model_name: str, validation: list[str]) -> set[str]:
    """The molecules (SMILES) a model's weights were trained on, from its ``config.json`` (``record``: the
    ``"training"`` run's and any ``"transfer"`` fine-tune's ``train_molecules``); refuses a run starting from
    those weights whose ``validation`` molecules hold any of them, and warns when ``validation`` names
    molecules but the record does not (a model trained before models recorded them)."""
    import warnings

    runs = [record.get(part, {}) for part in ("training", "transfer")]
    seen = set().union(*(run.get("train_molecules", []) for run in runs))
    if validation and not any("train_molecules" in run for run in runs):
        warnings.warn(f"init_from {model_name} does not record the molecules it was trained on, so this run "
                      "cannot check that its validation molecules are new to those weights: its validation "
                      "error may be optimistic", UserWarning, stacklevel=3)
    leaked = seen & set(validation)
    if leaked:
        raise InputError(f"init_from {model_name}: {len(leaked)} of this run's {len(validation)} validation "
                         f"molecules (e.g. {sorted(leaked)[0]}) were trained on by that model, so the "
                         "validation error, the uncertainty calibration and the best-model choice would be "
                         "optimistic; keep that model's split (its seed, n_train and n_val on labels of the "
                         "same molecules) or start from scratch")
    return seen


def read_log(output: Path, step: int) -> list[dict]:
    """The rows of ``output/log.csv`` up to ``step`` (what a resumed run continues), or none."""
    log = output / "log.csv"
    if not log.exists():
        return []
    with open(log) as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)
                if int(float(row["step"])) <= step]


def write_log(output: Path, history: list[dict]) -> None:
    """``history`` (one dict per validation, same keys) as ``output/log.csv``."""
    with open(output / "log.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)


def plot_learning_curve(history: list[dict], path: Path) -> None:
    """Training and validation MAE of F (micro-Hartree, log scale) against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, [h["train_mae_uha"] for h in history], label="train (batch mean)")
    ax.plot(steps, [h["val_mae_uha"] for h in history], label="validation (EMA)")
    ax.set_xlabel("step")
    ax.set_ylabel("MAE of F (micro-Hartree)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
