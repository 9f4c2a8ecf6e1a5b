"""The loop that every fine-tuning run shares (:mod:`mlwfcalc.training.transfer`, :mod:`mlwfcalc.training.functional_fit`):
a model and its EMA copy, a cosine schedule, validation every ``val_every`` steps, a resumable checkpoint,
``log.csv``, ``best/`` (the best EMA model by the validation loss) and, once the schedule has ended, ``last/``.

A subclass sets ``config_class``, ``resume_keys`` (the settings a resumed run must share), ``logged_train_keys``
(the training terms averaged into each log row) and ``progress_label``, builds ``dataset``, ``train_index``,
``val_index``, ``model``, ``ema`` and ``optimizer`` in its ``__init__`` (after :meth:`_open`), and implements
:meth:`train_step`, :meth:`validate` and :meth:`export`.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..predictor import resolve_device
from ..validation import InputError
from .checkpoint import (CHECKPOINT_META, check_same_labels, check_same_validation, load_checkpoint,
                         read_checkpoint_meta, read_log, write_checkpoint, write_log)
from .optimisation import learning_rate


class FineTuningRun:
    """One resumable fine-tuning run in ``config.output``; see the module docstring for what subclasses add."""

    config_class: type
    resume_keys: tuple[str, ...] = ()
    logged_train_keys: tuple[str, ...] = ("loss",)
    progress_label = "fine-tuning"

    def _open(self, config, progress: bool) -> None:
        """The settings every run starts from: config, output directory, torch threads and device."""
        self.config = config
        self.progress = progress
        self.output = Path(config.output)
        if config.threads:
            torch.set_num_threads(config.threads)
        self.device = resolve_device(config.device)
        self.step, self.best_val, self.history = 0, math.inf, []

    @property
    def resuming(self) -> bool:
        """Whether ``output`` holds a checkpoint to go on from."""
        return (self.output / CHECKPOINT_META).exists()

    def _check_labels(self) -> None:
        """Refuse labels other than the checkpoint's (call before the split: the split depends on them)."""
        if self.resuming:
            check_same_labels(read_checkpoint_meta(self.output), self.dataset, self.output)

    # --- to implement --------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        """One optimiser step; returns the training terms (``logged_train_keys`` at least)."""
        raise NotImplementedError

    def validate(self) -> dict[str, float]:
        """Validation errors of the EMA model, ``"loss"`` (which decides ``best/``) among them."""
        raise NotImplementedError

    def export(self, directory: Path, validation: dict[str, float]) -> Path:
        """Write the EMA model with this run's record."""
        raise NotImplementedError

    # --- state -----------------------------------------------------------------------------------
    def _modules(self) -> dict[str, torch.nn.Module]:
        return {"model": self.model.model, "ema": self.ema.model}

    def save_checkpoint(self) -> None:
        write_checkpoint(self.output, self._modules(), self.optimizer,
                         {"step": self.step, "best_val_loss": self.best_val, "config": asdict(self.config),
                          "dataset_fingerprint": self.dataset.fingerprint, "dataset_size": len(self.dataset),
                          "val_molecules": self.dataset.molecules_of(self.val_index)})

    def _resume(self) -> None:
        meta = load_checkpoint(self.output, self._modules(), self.optimizer)
        saved = self.config_class(**meta["config"])
        for key in self.resume_keys:
            if getattr(saved, key) != getattr(self.config, key):
                raise InputError(f"{self.output} holds a run with {key}={getattr(saved, key)!r}, not "
                                 f"{getattr(self.config, key)!r}; resume with the same settings or use a new output")
        check_same_validation(meta, self.dataset.molecules_of(self.val_index), self.output)
        self.step, self.best_val = int(meta["step"]), float(meta["best_val_loss"])
        self.history = read_log(self.output, self.step)

    # --- loop ------------------------------------------------------------------------------------
    def run(self, stop_at_step: int | None = None) -> dict:
        """Fine-tune until ``max_steps`` (or ``stop_at_step`` or ``max_minutes``); returns a summary. Step 0 is
        validated first: the starting model is the baseline the run must beat."""
        config = self.config
        end = min(config.max_steps, stop_at_step or config.max_steps)
        started, first_step, running = time.perf_counter(), self.step, []
        if not self.history:
            self._validate_and_save([], 0.0)
        with tqdm(total=config.max_steps, initial=self.step, desc=self.progress_label, unit="step",
                  disable=not self.progress) as bar:
            while self.step < end:
                running.append(self.train_step())
                bar.update()
                timed_out = config.max_minutes is not None and time.perf_counter() - started > 60 * config.max_minutes
                if self.step % config.val_every == 0 or self.step == end or timed_out:
                    seconds = (time.perf_counter() - started) / max(1, self.step - first_step)
                    self._validate_and_save(running, seconds)
                    bar.set_postfix(val_loss=f"{self.history[-1]['val_loss']:.3g}")
                    running = []
                if timed_out:
                    break
        if self.step >= config.max_steps:  # the end of the schedule: the last EMA weights too
            last = self.history[-1]
            self.export(self.output / "last", {k[4:]: v for k, v in last.items() if k.startswith("val_")})
        return {"step": self.step, "best_val_loss": self.best_val, "seconds": time.perf_counter() - started,
                "history": self.history}

    def _validate_and_save(self, running: list[dict], seconds_per_step: float) -> None:
        val = self.validate()
        row = {"step": self.step, "lr": learning_rate(self.config, max(self.step - 1, 0)),
               **{f"train_{k}": float(np.nanmean([r[k] for r in running])) if running else math.nan
                  for k in self.logged_train_keys},
               **{f"val_{k}": v for k, v in val.items()}, "seconds_per_step": seconds_per_step}
        self.history.append(row)
        if val["loss"] < self.best_val:
            self.best_val = val["loss"]
            self.export(self.output / "best", val)
        self.save_checkpoint()
        write_log(self.output, self.history)
