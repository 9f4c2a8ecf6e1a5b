"""The ``mlwfcalc`` command line: ``mlwfcalc sample | label | ...``.

Bad input ends with one line ``mlwfcalc <command>: error: ...`` and exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from .validation import InputError


def _cmd_sample(args) -> None:
    from .data.sampling import (load_start_structure, sample_md, sample_normal_modes, sample_tautomer_path,
                                sample_trajectories)

    temperatures, seeds = _numbers(args.temperature, float, "--temperature"), _numbers(args.seed, int, "--seed")
    if (args.method == "tautomer-path") != (args.mapping is not None):
        raise InputError("--method tautomer-path needs --mapping (and --mapping belongs to it)")
    if args.method == "tautomer-path":
        from .data.labelling import read_images

        if len(seeds) > 1:
            raise InputError("--method tautomer-path takes one --seed")
        sources = [atoms for _, _, atoms in read_images([args.start])]
        frames = sample_tautomer_path(sources, args.output, mapping=_numbers(args.mapping, int, "--mapping"),
                                      n_frames=args.frames, min_fraction=args.min_fraction, seed=seeds[0],
                                      overwrite=args.overwrite)
        print(f"wrote {len(frames)} frames along the tautomer path of {sources[0].get_chemical_formula()} to "
              f"{args.output} (from {len(sources)} frames of {args.start}; path fractions {args.min_fraction:g}-0.5)")
        return
    if args.every_frame:
        from .data.labelling import read_images

        if args.method != "md":
            raise InputError("--every-frame runs MD from each molecule; drop --method normal-modes")
        starts = [atoms for _, _, atoms in read_images([args.start])]
        frames = sample_trajectories(starts, args.output, temperatures_K=temperatures, seeds=seeds,
                                     n_frames=args.frames, interval=args.interval, timestep_fs=args.timestep,
                                     equilibration=args.equilibration, friction_per_fs=args.friction,
                                     keep_bonds=not args.allow_reactions, overwrite=args.overwrite,
                                     progress=not args.quiet)
        sampled = len({int(f.info["start_index"]) for f in frames})
        left_out = f"; {len(starts) - sampled} left out, their bonds changed" if sampled < len(starts) else ""
        print(f"wrote {len(frames)} frames of {sampled} molecules{left_out} to {args.output} (each relaxed, then GFN2-xTB "
              f"Langevin MD at {', '.join(f'{t:g}' for t in temperatures)} K, seeds {', '.join(map(str, seeds))})")
        return
    start = load_start_structure(args.start)
    formula = start.get_chemical_formula()
    if args.method == "normal-modes":
        if len(seeds) > 1:
            raise InputError("--method normal-modes takes one --seed (its frames are independent draws)")
        frames = sample_normal_modes(start, args.output, temperatures_K=temperatures, n_frames=args.frames,
                                     seed=seeds[0], overwrite=args.overwrite, progress=not args.quiet)
        print(f"wrote {len(frames)} frames of {formula} to {args.output} (normal-mode distortions of the GFN2-xTB "
              f"minimum at {', '.join(f'{t:g}' for t in temperatures)} K)")
        return
    md = dict(interval=args.interval, timestep_fs=args.timestep, equilibration=args.equilibration,
              friction_per_fs=args.friction, overwrite=args.overwrite, progress=not args.quiet)
    if len(temperatures) == 1 and len(seeds) == 1:
        frames = sample_md(start, args.output, temperature_K=temperatures[0], n_frames=args.frames, seed=seeds[0],
                           **md)
    else:
        frames = sample_trajectories(start, args.output, temperatures_K=temperatures, seeds=seeds,
                                     n_frames=args.frames, **md)
    print(f"wrote {len(frames)} frames of {formula} to {args.output} (GFN2-xTB Langevin MD at "
          f"{', '.join(f'{t:g}' for t in temperatures)} K, seeds {', '.join(map(str, seeds))}; every {args.interval} "
          f"steps of {args.timestep} fs)")


def _cmd_molecules(args) -> None:
    import csv
    import json
    from pathlib import Path

    from ase.io import write

    from .data.molecules import conformer, coverage, enumerate_molecules, split_molecules

    folder = Path(args.output)
    if folder.exists() and any(folder.iterdir()):
        raise InputError(f"{folder} is not empty; choose a new folder")
    exclude = []
    if args.exclude:
        from .data.labelling import read_images
        from .data.molecules import smiles_of

        exclude = [smiles_of(atoms) for _, _, atoms in read_images(args.exclude)]
        if not any(exclude):
            raise InputError(f"--exclude {' '.join(args.exclude)}: no frame names its molecule (info 'smiles'); give "
                             "frames written by `mlwfcalc molecules` or `mlwfcalc sample --every-frame`")
    molecules = enumerate_molecules(args.n, args.max_heavy, args.elements, seed=args.seed,
                                    composition=args.composition, exclude=exclude)
    conformers, unembedded = {}, []
    for m in molecules:  # a graph RDKit cannot embed in 3D is left out, and said so
        try:
            conformers[m.smiles] = conformer(m, seed=args.seed)
        except InputError:
            unembedded.append(m.smiles)
    molecules = [m for m in molecules if m.smiles in conformers]
    parts = split_molecules(molecules, tuple(_numbers(args.split, float, "--split")), seed=args.seed)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "molecules.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["smiles", "formula", "heavy_atoms", "split"])
        for name, group in parts.items():
            writer.writerows([m.smiles, m.formula, m.heavy_atoms, name] for m in group)
            write(folder / f"{name}.xyz", [conformers[m.smiles] for m in group], format="extxyz")
    if unembedded:
        print(f"left out {len(unembedded)} molecules RDKit could not embed in 3D: {', '.join(unembedded)}")
    report = {name: coverage(group) for name, group in [("all", molecules), *parts.items()]}
    (folder / "coverage.json").write_text(json.dumps(report, indent=1))
    every = report["all"]
    print(f"{len(molecules)} molecules ({', '.join(f'{k}: {len(v)}' for k, v in parts.items())}, no molecule in two "
          f"splits) in {folder}\n  heavy atoms: {every['heavy_atoms']}\n  containing: {every['elements']}\n"
          f"  rings: {every['rings']}\n  groups: {every['functional_groups']}")


def _numbers(text: str, kind, flag: str) -> list:
    """``"300,500"`` -> ``[300.0, 500.0]``; a clear error for anything else."""
    try:
        values = [kind(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise InputError(f"{flag} {text!r}: give a number or a comma-separated list such as 300,500,700") from None
    if not values:
        raise InputError(f"{flag} is empty")
    return values


def _cmd_select(args) -> None:
    import warnings

    import numpy as np
    from ase.io import write

    from .data.labelling import read_images
    from .data.selection import deduplicate, pool_summary, select_frames
    from .domain import OutOfDomainWarning
    from .predictor import load_model
    from .uncertainty import QUANTITIES

    _set_threads(args.threads)
    pool = [atoms for _, _, atoms in read_images(args.frames)]
    if args.exclude:
        from .data.database import LabelDatabase
        from .data.records import geometry_key

        done = LabelDatabase(args.exclude).keys()
        pool = [a for a in pool if geometry_key(a.numbers, a.positions) not in done]
    kept = [pool[k] for k in deduplicate(pool, args.tolerance)]
    if not kept:
        raise InputError("no frames left to select from (all duplicates or already labelled)")
    model = load_model(args.model, device=args.device)
    picked, uncertainty = select_frames(model, kept, args.n, args.by, progress=not args.quiet)
    # a Kohn-Sham model's uncertainty is an expected F error, a transfer model's an expected force error
    quantity = model.uncertainty.config.quantity
    describe = model.uncertainty.config.describe
    factor = QUANTITIES[quantity]["readable"][0]  # to micro-Hartree (F) or meV/A (forces)
    key = "uncertainty_uha" if quantity == "fock" else "uncertainty_mev_per_a"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutOfDomainWarning)
        for k in picked:
            kept[k].info[key] = round(factor * float(uncertainty[k]), 2)
    write(args.output, [kept[k] for k in picked], format="extxyz")
    print(f"pool: {pool_summary(pool)}; {len(pool) - len(kept)} near-duplicates dropped; wrote {len(picked)} frames "
          f"({args.by}) to {args.output}; uncertainty of the picked frames: median "
          f"{describe(float(np.median(uncertainty[picked])))}, of the pool: median "
          f"{describe(float(np.median(uncertainty)))}")


def _cmd_label(args) -> None:
    from .data.labelling import label_frames, read_frames
    from .theory import LevelOfTheory

    method = args.method.upper()
    if method != "RKS" and args.xc is not None:
        raise InputError(f"--xc sets the functional of --method rks; {method} runs on a Hartree-Fock reference: "
                         "drop --xc")
    if method != "RKS" and args.gradient != "exact":
        raise InputError(f"--gradient {args.gradient} applies to --method rks; {method} forces are analytic and "
                         "exact: drop --gradient")
    settings = LevelOfTheory(method=method, xc=args.xc or "pbe", basis=args.basis, grid_level=args.grid_level,
                             conv_tol=args.conv_tol, max_cycle=args.max_cycle, gradient=args.gradient)
    frames = read_frames(args.frames)
    summary = label_frames(frames, args.output, settings, workers=args.workers, threads_per_worker=args.threads,
                           progress=not args.quiet, scheduler=args.scheduler, guess=args.guess,
                           forces=not args.no_forces)
    print(summary)


def _cmd_pack_labels(args) -> None:
    from .data.archive import pack_labels

    path, rows = pack_labels(args.database, args.output, fock_precision=args.fock_precision)
    print(f"{args.output}: every row of {args.database} archived already" if path is None else
          f"wrote {rows} rows of {args.database} to {path} ({path.stat().st_size / 2**20:.1f} MiB)")


def _cmd_unpack_labels(args) -> None:
    from .data.archive import unpack_labels

    written, skipped = unpack_labels(args.archives, args.output)
    print(f"wrote {written} archived rows to {args.output} ({skipped} were there already)")


def _cmd_train(args) -> None:
    if args.transfer:
        return _cmd_transfer(args)
    from .nn.model import ModelConfig
    from .training.optimisation import TrainConfig
    from .training.trainer import Trainer

    overrides = {k: getattr(args, k) for k in ("dataset", "output", "seed", "batch_size", "max_steps", "max_minutes",
                                               "lr", "val_every", "dtype", "threads", "n_train", "n_val",
                                               "orbital_loss_weight", "density_loss_weight", "init_from",
                                               "device")}
    model_overrides = {k: getattr(args, k) for k in ("channels", "num_layers", "lmax", "cutoff", "target")
                       if getattr(args, k) is not None}
    basis_given = False
    if args.config:
        config = TrainConfig.from_toml(args.config, **overrides)
        basis_given = "basis" in TrainConfig.read_toml(args.config).get("model", {})
    else:
        if not args.dataset or not args.output:
            raise InputError("give DATASET and -o OUTPUT, or --config FILE.toml")
        config = TrainConfig(**{k: v for k, v in overrides.items() if v is not None})
    if args.no_normalisation:
        config.normalise_outputs = False
    if not basis_given:  # the dataset's basis; a basis named in the TOML is kept, and checked by the Trainer
        from .data.database import LabelDatabase

        model_overrides["basis"] = LabelDatabase(config.dataset).settings.basis
    config.model = ModelConfig(**{**config.model.to_dict(), **model_overrides})
    from pathlib import Path

    if args.ddp and args.ddp > 1:
        from .training.distributed import launch
        from .training.checkpoint import CHECKPOINT_META, read_checkpoint_meta
        from .training.trainer import train_process

        launch(train_process, args.ddp, config.to_dict(), not args.quiet, args.stop_at_step)
        output = Path(config.output)
        finished = (output / CHECKPOINT_META).exists() and read_checkpoint_meta(output)["step"] >= config.max_steps
    else:
        trainer = Trainer(config, progress=not args.quiet)
        print(f"model: {trainer.model.num_parameters():,} parameters; {len(trainer.data.train_index)} train / "
              f"{len(trainer.data.val_index)} validation molecules; starting at step {trainer.step}")
        summary = trainer.run(stop_at_step=args.stop_at_step)
        print(f"step {summary['step']}: best validation MAE of F {summary['best_val_mae_uha']:.1f} micro-Hartree; "
              f"{summary['seconds_per_step'] * 1000:.0f} ms/step; best model in {config.output}/best")
        finished = trainer.step >= config.max_steps
        if not trainer.ctx.main:  # a torchrun process other than the first: process 0 records the domain
            return
    if finished or args.stop_at_step is None:
        try:
            fitted = _record_domain(Path(config.output) / "best", config.device, args)
        except InputError as err:  # the labels changed during the run: the model stands, its domain waits
            print(f"training domain not recorded: {err}")
            return
        print(f"training domain recorded: {_fitted(fitted)}")


def _record_domain(model_dir, device: str, args) -> dict:
    """Fit and save the training domain and uncertainty of the model in ``model_dir`` on its Kohn-Sham
    training set's seeded split (what `mlwfcalc fit-domain` does); returns the fit's summary."""
    import warnings

    from .data.dataset import LabelledDataset
    from .training.domain_fit import fit_and_save_domain
    from .predictor import load_model

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*no recorded training domain.*")
        model = load_model(model_dir, device=device)
    dataset = LabelledDataset(model.model.record["training"]["dataset"])
    train_index, val_index, _ = _model_split(model, dataset)
    return fit_and_save_domain(model, dataset, train_index, val_index, compositions=args.compositions,
                               progress=not args.quiet)


def _cmd_transfer(args) -> None:
    """``mlwfcalc train --transfer HIGH_LEVEL_DB --init-from MODEL``: fine-tune through the wavefunction."""
    import dataclasses

    from .training.transfer import TransferConfig, TransferTrainer

    if args.dataset:
        raise InputError("with --transfer the labels are the --transfer database; drop the DATASET argument")
    overrides = {k: getattr(args, k) for k in ("output", "seed", "batch_size", "max_steps", "max_minutes", "lr",
                                               "val_every", "dtype", "threads", "n_train", "n_val", "init_from",
                                               "device")}
    overrides["high_level"] = args.transfer
    known = {f.name for f in dataclasses.fields(TransferConfig)}
    data = {}
    if args.config:
        from .training.optimisation import TrainConfig

        data = TrainConfig.read_toml(args.config)
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"{args.config}: {', '.join(unknown)} are not fine-tuning settings "
                             f"({', '.join(sorted(known))})")
    data.update({k: v for k, v in overrides.items() if v is not None})
    if not data.get("output"):
        raise InputError("give -o OUTPUT (the run directory) or output in --config")
    trainer = TransferTrainer(TransferConfig(**data), progress=not args.quiet)
    print(f"fine-tuning {trainer.config.init_from} on {trainer.high_level.name} labels: {len(trainer.train_index)} "
          f"train / {len(trainer.val_index)} validation molecules; starting at step {trainer.step}")
    summary = trainer.run(stop_at_step=args.stop_at_step)
    best = min(summary["history"], key=lambda row: row["val_loss"])
    print(f"step {summary['step']}: best at step {best['step']:.0f}: energy MAE {best['val_energy_mae_mev']:.2f} meV "
          f"({best['val_energy_mae_offset_free_mev']:.2f} offset-free), forces {best['val_force_mae_mev_per_a']:.1f} "
          f"meV/A, dipole {best['val_dipole_mae_md']:.1f} mD per component, F moved "
          f"{best['val_fock_shift_rms_uha']:.0f} micro-Hartree (RMS); best model in {trainer.output}/best"
          + (f", final weights in {trainer.output}/last" if (trainer.output / "last").exists() else ""))
    if trainer.step >= trainer.config.max_steps or args.stop_at_step is None:  # as `train` does
        _refit_uncertainty(trainer, args)


def _refit_uncertainty(trainer, args) -> None:
    """The fine-tuned model's energy follows the high level, where the starting model's uncertainty (distance
    to its Kohn-Sham data, calibrated on F) says nothing: fit the domain and the uncertainty of the best (and
    last) model on this run's own split of the high-level set, calibrated on the validation force errors."""
    from .training.domain_fit import fit_and_save_domain
    from .predictor import load_model

    for name in ("best", "last"):  # last/: the final weights, once the schedule has ended
        if not (trainer.output / name).exists():
            continue
        model = load_model(trainer.output / name, device=trainer.config.device)
        fitted = fit_and_save_domain(model, trainer.dataset, trainer.train_index, trainer.val_index,
                                     quantity="forces", compositions=args.compositions, progress=not args.quiet)
        print(f"{name}/: training domain and uncertainty fitted on {trainer.config.high_level}: {_fitted(fitted)}")


def _cmd_train_energy(args) -> None:
    import json
    import time

    from .data.dataset import LabelledDataset
    from .training.energy_fit import EnergyFitConfig, errors, fit_energy_head, model_errors, precompute
    from .io import save_model
    from .predictor import load_model

    _set_threads(args.threads)
    model = load_model(args.model, device=args.device)
    dataset = LabelledDataset(args.dataset)
    _check_labels(model, dataset)
    train_index, val_index, seed = _model_split(model, dataset, args.seed, args.n_train, args.n_val)
    config = EnergyFitConfig(term=args.term, features=args.features, hidden=[int(w) for w in args.hidden.split(",")],
                             energy_weight=args.energy_weight, force_weight=args.force_weight, epochs=args.epochs,
                             lr=args.lr, seed=seed)
    start = time.perf_counter()
    train = precompute(model, [dataset[int(i)] for i in train_index], config.term, config.features,
                       progress=not args.quiet)
    val = precompute(model, [dataset[int(i)] for i in val_index], config.term, config.features,
                     progress=not args.quiet)
    seconds_features = time.perf_counter() - start
    head, history = fit_energy_head(train, val, model.elements, config, progress=not args.quiet)
    summary = {"dataset": str(args.dataset), "n_train": len(train_index), "n_val": len(val_index), "seed": seed,
               "fit": vars(config), "train": errors(head, train), "val": errors(head, val),
               "seconds": round(time.perf_counter() - start, 1), "seconds_features": round(seconds_features, 1)}
    if args.test:
        test_set = LabelledDataset(args.test)
        _check_labels(model, test_set)
        summary["test_dataset"] = str(args.test)
        model.model.energy_head = head
        model.model.check_parts()
        summary["test"] = model_errors(model, test_set.samples)
    for part in ("train", "val", "test"):
        if part in summary:
            e = summary[part]
            skipped = f"; {e['n_outside_domain']} outside the training domain, left out" \
                if e.get("n_outside_domain") else ""
            print(f"{part:5s} ({e['n_molecules']} molecules): energy MAE {e['energy_mae_mev']:.2f} meV, "
                  f"force MAE {e['force_mae_mev_per_a']:.1f} meV/A{skipped}")
    if args.dry_run:
        print(json.dumps(history[-1]))
        return
    model.model.energy_head = head
    model.model.record["energy_training"] = summary
    save_model(model.model, model.path)
    print(f"energy head ({config.term}) written to {model.path}")


def _model_split(model, dataset, seed: int | None = None, n_train: float | None = None,
                 n_val: float | None = None) -> tuple:
    """``(train_index, val_index, seed)``: the model's own training split, unless ``seed``, ``n_train`` or
    ``n_val`` (the command-line flags) say otherwise; on a transfer model's high-level set, the split of its
    fine-tuning run."""
    given = (seed, n_train, n_val)
    training = model.model.record.get("training", {})
    config = training.get("train_config", {})  # the sizes as configured (molecules, for a grouped split)
    defaults = (config.get("seed", 0), config.get("n_train", training.get("n_train", 0.9)),
                config.get("n_val", training.get("n_val", 0.1)))
    transfer = model.model.record.get("transfer")
    on_transfer_split = bool(transfer and dataset.settings.name == transfer["high_level"])
    if on_transfer_split:
        training = transfer
        defaults = tuple(transfer["config"][k] for k in ("seed", "n_train", "n_val"))
    seed, n_train, n_val = (default if value is None else value for value, default in zip(given, defaults))
    recorded = training.get("dataset_fingerprint")
    if recorded and recorded != dataset.fingerprint and given == (None, None, None):
        raise InputError(f"{dataset.path} is not the label set {model.name} was trained on as it was then (rows were "
                         "added or removed since), so the model's own split cannot be rebuilt from it: give a copy "
                         "of the labels as they were, or choose a split with --seed/--n-train/--n-val")
    import warnings

    train_index, val_index = dataset.split([n_train, n_val], seed)
    molecules = dataset.molecules_of(val_index)
    seen = set(training.get("train_molecules", [])) & set(molecules)
    if molecules and given != (None, None, None) and seen:
        warnings.warn(f"{len(seen)} of the {len(molecules)} validation molecules of this split were trained on by "
                      f"{model.name}: what is fitted on them (uncertainty calibration, the energy head's choice of "
                      "epoch) is optimistic", UserWarning, stacklevel=2)
    if molecules and given == (None, None, None) and not on_transfer_split:  # a transfer record lists none
        if "val_molecules" not in training:
            warnings.warn(f"{model.name} does not record its validation molecules (trained before 2026-12-07, when "
                          "the split still followed the order of the rows): the split rebuilt here may not be its "
                          "own, and molecules it was trained on may be scored as validation", UserWarning,
                          stacklevel=2)
        elif training["val_molecules"] != molecules:
            raise InputError(f"the validation molecules rebuilt from {dataset.path} are not the "
                             f"{len(training['val_molecules'])} that {model.name} records, so fitting on this split "
                             "would score molecules it was trained on: give the labels it was trained on, or choose "
                             "a split with --seed/--n-train/--n-val")
    return train_index, val_index, seed


def _cmd_fit_domain(args) -> None:
    import warnings

    from .data.dataset import LabelledDataset
    from .training.domain_fit import fit_and_save_domain
    from .predictor import load_model

    _set_threads(args.threads)
    with warnings.catch_warnings():  # the domain about to be recorded is unknown until then
        warnings.filterwarnings("ignore", message=".*no recorded training domain.*")
        model = load_model(args.model, device=args.device)
    transfer = model.model.record.get("transfer")
    dataset = LabelledDataset(args.dataset, kohn_sham=not transfer)
    if transfer and dataset.settings.name != transfer["high_level"]:
        raise InputError(f"{model.name} was fine-tuned on {transfer['high_level']} labels; {args.dataset} holds "
                         f"{dataset.settings.name}: give its high-level set ({transfer['high_level_dataset']})")
    if not transfer:
        _check_labels(model, dataset)
    train_index, val_index, _ = _model_split(model, dataset, args.seed, args.n_train, args.n_val)
    summary = fit_and_save_domain(model, dataset, train_index, val_index, compositions=args.compositions,
                                  margin_ang=args.margin, threshold_factor=args.threshold_factor,
                                  quantity="forces" if transfer else "fock", progress=not args.quiet)
    print(f"domain of {model.name}: {_fitted(summary)}; written to {model.path}")


def _fitted(summary: dict) -> str:
    """One line on what ``fit_domain`` recorded."""
    line = f"{', '.join(summary['formulas'][:10])} from {summary['n_train_structures']} training structures"
    if "uncertainty" in summary:
        return f"{line}; uncertainty {summary['uncertainty']}"
    error = "F" if summary["quantity"] == "fock" else "force"
    return (f"{line}; uncertainty ({summary['aggregation']} over atoms, shrinkage {summary['shrinkage']:g}) "
            f"calibrated on {summary['n_structures']} validation structures (rank correlation with their {error} "
            f"error {summary['spearman']:.2f}), threshold: {summary['threshold_text']}")


def _check_labels(model, dataset) -> None:
    settings = dataset.settings
    if settings.basis != model.basis or settings.xc != model.functional:
        raise InputError(f"dataset {dataset.path} is {settings.xc}/{settings.basis}, the model "
                         f"{model.functional}/{model.basis}: fit the energy head on the model's own level of theory")


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def _cmd_evaluate(args) -> None:
    from .data.dataset import LabelledDataset
    from .training.evaluation import evaluate, groups_of, plot_trend, write_report
    from .predictor import load_model

    _set_threads(args.threads)
    model = load_model(args.model, device=args.device, overlap_subspace=args.overlap_subspace)
    sets = {}
    for item in args.datasets:
        label, _, path = item.rpartition("=")
        sets[label or path] = path
    reports = {}
    for label, path in sets.items():
        dataset = LabelledDataset(path)
        parts = {label: None}
        if args.group_by:
            if len(sets) > 1:
                raise InputError("--group-by splits one dataset into columns; give one dataset")
            parts = groups_of(dataset, args.group_by)
        for name, indices in parts.items():
            reports[name] = evaluate(model, dataset, progress=not args.quiet,
                                     parity_plot=args.plot if len(reports) == 0 else None,
                                     rotation_seed=None if args.no_rotate else args.rotate, indices=indices,
                                     scf_frames=args.scf)
    rotation = "as stored" if args.no_rotate else f"each molecule randomly rotated (seed {args.rotate})"
    if len(reports) == 1:
        (label, report), = reports.items()
        path = list(sets.values())[0]
        group = f", {label}" if args.group_by else ""
        print(f"model {args.model} on {path}{group} ({rotation})\n{report.table()}")
        write_report(report, args.json, {"model": str(args.model), "dataset": path,
                                         **({"group": label} if args.group_by else {})})
    else:
        print(f"model {args.model} ({rotation})\n| metric | " + " | ".join(reports) + " |")
        print("|---" * (len(reports) + 1) + "|")
        rows = [r.rows() for r in reports.values()]
        for i, (name, _) in enumerate(rows[0]):
            print(f"| {name} | " + " | ".join(r[i][1] for r in rows) + " |")
        write_report(reports, args.json, {"model": str(args.model), "datasets": sets,
                                          **({"group_by": args.group_by} if args.group_by else {})})
        if args.trend:
            plot_trend(reports, args.trend, title=f"{model.name}: error against the test set")
    print(f"wrote {args.json}" + (f" and {args.plot}" if args.plot else "") +
          (f" and {args.trend}" if args.trend and len(reports) > 1 else ""))


def _cmd_predict(args) -> None:
    import time

    import numpy as np
    from ase.units import Hartree

    from .data.sampling import load_start_structure
    from .predictor import load_model
    from .pyscf import reference_scf

    model = load_model(args.model, device=args.device)
    atoms = load_start_structure(args.structure)
    model.predict(atoms, domain=args.domain)  # warm-up: the first call allocates and builds caches
    start = time.perf_counter()
    result = model.predict(atoms, domain=args.domain)
    seconds = time.perf_counter() - start
    n_occ = int((result.mo_occ > 0).sum())
    print(f"{atoms.get_chemical_formula()} with {args.model}: {result.mol.nao} AOs ({model.basis}), "
          f"{n_occ} occupied orbitals, predicted in {1000 * seconds:.1f} ms on {model.device}")
    print(f"HOMO {result.mo_energy[n_occ - 1] * Hartree:.3f} eV, LUMO {result.mo_energy[n_occ] * Hartree:.3f} eV, "
          f"gap {result.homo_lumo_gap * Hartree:.3f} eV")
    if result.energy is not None:
        print(f"energy (energy head) {result.energy:.8f} Hartree")
    if result.uncertainty is not None:
        flag = (" ABOVE the model's threshold: more than twice its validation error expected"
                if result.uncertainty > model.uncertainty_threshold else " (below the model's threshold)")
        print(f"uncertainty: {model.uncertainty.config.describe(result.uncertainty)}{flag}")
    if result.spurious_orbitals:
        print(f"SPURIOUS occupied orbital(s) {result.spurious_orbitals}: made of the basis's near-linear "
              "dependencies; orbital energies, gap and dipole are unreliable here")
    if args.compare:
        mf = reference_scf(model, result.mol, conv_tol=1e-10)
        start = time.perf_counter()
        mf.kernel()
        scf_seconds = time.perf_counter() - start
        fock = mf.get_fock()
        occ_error = np.abs(result.mo_energy[:n_occ] - mf.mo_energy[:n_occ]).mean()
        print(f"PySCF {model.functional.upper()} SCF ({scf_seconds:.2f} s, {mf.cycles} cycles): MAE of F "
              f"{1e6 * np.abs(result.fock - fock).mean():.1f} micro-Hartree, occupied orbital energies "
              f"{1e6 * occ_error:.1f} micro-Hartree, gap error "
              f"{1000 * Hartree * abs(result.homo_lumo_gap - (mf.mo_energy[n_occ] - mf.mo_energy[n_occ - 1])):.2f} meV")
        if result.energy is not None:
            print(f"energy error of the energy head {1000 * Hartree * (result.energy - mf.e_tot):+.2f} meV")


def _cmd_scf(args) -> None:
    import time
    from functools import partial

    import numpy as np
    from ase.io import read
    from ase.io.formats import parse_filename
    from ase.units import Hartree

    from .theory import LevelOfTheory
    from .pyscf import TrajectoryGuess, resolve_model

    model = resolve_model(args.model, args.device)
    name, index = parse_filename(args.structure)
    try:
        images = read(name, index=-1 if index is None else index)
    except (OSError, ValueError, IndexError, StopIteration) as err:
        raise InputError(f"cannot read {args.structure} ({err}); give an xyz or extxyz file, or FILE@SLICE for "
                         "several frames (traj.xyz@:10)") from None
    images = images if isinstance(images, list) else [images]
    if not images:
        raise InputError(f"{args.structure} holds no frame")
    from pyscf import gto

    for k, atoms in enumerate(images):
        electrons = int(atoms.numbers.sum()) - args.charge
        if (electrons - args.spin) % 2:
            where = f"frame {k} of {name}: " if len(images) > 1 else ""
            raise InputError(f"{where}charge {args.charge} and spin {args.spin} (2S) leave {electrons} electrons, "
                             f"which cannot have 2S = {args.spin}: give --spin {1 if args.spin == 0 else args.spin - 1} "
                             "for an odd electron count, or another --charge")
    guesser = TrajectoryGuess(model, domain=args.domain)  # several frames: each starts from the one before
    cycles, reference_cycles, unconverged = [], [], []
    for k, atoms in enumerate(images):
        mol = gto.M(atom=[(s, p) for s, p in zip(atoms.get_chemical_symbols(), atoms.positions)], unit="Angstrom",
                    basis=args.basis or model.basis, charge=args.charge, spin=args.spin, verbose=0)
        settings = LevelOfTheory(xc=args.xc or model.functional, basis=mol.basis, grid_level=args.grid_level,
                                 conv_tol=args.conv_tol)
        make = partial(settings.make_scf, mol)
        mf = make()
        start = time.perf_counter()
        dm0 = guesser.guess(mf)
        guess_seconds = time.perf_counter() - start
        mf.kernel(dm0=dm0)
        seconds = time.perf_counter() - start
        source = "the previous frame's density and the model" if guesser.used_history else f"the {args.model} guess"
        if mf.converged:  # an unconverged frame is reported below; the next one starts from the model alone
            guesser.update(mf)
        else:
            guesser.reset()
        cycles.append(mf.cycles)
        status = "converged" if mf.converged else "NOT converged"
        if not mf.converged:
            unconverged.append(k)
        where = f"frame {k}: " if len(images) > 1 else ""
        print(f"{where}{atoms.get_chemical_formula()} {mf.xc.upper()}/{mol.basis}: E = {mf.e_tot:.10f} Hartree "
              f"({mf.e_tot * Hartree:.6f} eV), {status} in {mf.cycles} cycles from {source}, "
              f"{seconds:.2f} s (guess {1000 * guess_seconds:.0f} ms)")
        if args.compare:
            reference = make()
            start = time.perf_counter()
            reference.kernel()
            reference_cycles.append(reference.cycles)
            print(f"{where}minao guess: {reference.cycles} cycles, {time.perf_counter() - start:.2f} s; energy "
                  f"difference {abs(reference.e_tot - mf.e_tot):.1e} Hartree")
    if len(images) > 1:
        print(f"{len(images)} frames: mean {np.mean(cycles):.2f} cycles" +
              (f", minao {np.mean(reference_cycles):.2f} (ratio {np.mean(cycles) / np.mean(reference_cycles):.2f})"
               if reference_cycles else ""))
    if unconverged:
        raise InputError(f"the SCF did not converge in {mf.max_cycle} cycles"
                         + (f" (frames {', '.join(map(str, unconverged))})" if len(images) > 1 else ""))


def _cmd_models(args) -> None:
    from .io import MODELS_DIR, list_models

    models = list_models()
    if not models:
        print(f"no models in {MODELS_DIR}")
    for m in models:
        if "error" in m:
            print(f"{m['name']}: unusable ({m['error']})")
        else:
            from .domain import TrainingDomain

            status = f"; PRELIMINARY: {m['preliminary']}" if m.get("preliminary") else ""
            domain = TrainingDomain.from_dict(m["domain"]).summary() if m.get("domain") else "unknown"
            level = f"F at {m['functional'].upper()}/{m['basis']}"
            if m.get("energy_level") and m["energy_level"].lower() != f"{m['functional']}/{m['basis']}".lower():
                level += f", energies and forces at {m['energy_level']}"
            print(f"{m['name']}: {level}, elements {' '.join(m['elements'])}, domain {domain}, path {m['path']}{status}")


def _number(text: str):
    return float(text) if "." in text else int(text)


def _add_runtime(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _add_domain(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--domain", choices=["refuse", "warn"], default="refuse",
                        help="a molecule outside the model's training domain: refuse it (default), or warn and go on")


def _add_compositions(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--compositions", choices=["formulas", "elements"], default="formulas",
                        help="domain: answer only for the chemical formulas seen (per-molecule models, default), "
                             "or for any molecule of the elements and sizes seen (chemical-space models)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlwfcalc", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sample", help="sample geometries with GFN2-xTB (tblite): Langevin MD or normal-mode "
                                      "distortions")
    p.add_argument("start", help="xyz/extxyz file (last frame is used) or an ase.build.molecule name such as H2O")
    p.add_argument("-o", "--output", required=True, help="extxyz file to write")
    p.add_argument("--method", choices=["md", "normal-modes", "tautomer-path"], default="md",
                   help="md (default): Langevin MD trajectories; normal-modes: classical harmonic distortions of "
                        "the relaxed molecule (independent frames, reaching stretched bonds); tautomer-path: "
                        "START's frames (all of them: thermal frames) interpolated towards their own relabelled "
                        "copy (--mapping), along a degenerate rearrangement such as a proton transfer")
    p.add_argument("--temperature", default="500",
                   help="K, or a comma-separated list (one MD run per temperature and seed; normal modes: the "
                        "temperatures in turn); default 500, as MD17")
    p.add_argument("--frames", type=int, default=100,
                   help="frames per MD run (per temperature and seed), or in all for normal modes and tautomer-path "
                        "(default 100)")
    p.add_argument("--interval", type=int, default=20, help="MD steps between frames (default 20)")
    p.add_argument("--timestep", type=float, default=0.5, help="fs (default 0.5)")
    p.add_argument("--equilibration", type=int, default=200, help="MD steps before the first frame (default 200)")
    p.add_argument("--friction", type=float, default=0.01, help="Langevin friction in 1/fs (default 0.01)")
    p.add_argument("--seed", default="0", help="seed, or a comma-separated list (one MD run per seed)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--mapping", help="tautomer-path: comma-separated atom indices, atom i of the rearranged molecule "
                                     "is atom MAPPING[i] of START (malondialdehyde O C C C O H H H H: "
                                     "4,3,2,1,0,5,8,7,6)")
    p.add_argument("--min-fraction", type=float, default=0.1,
                   help="tautomer-path: smallest interpolation fraction; fractions are uniform in [this, 0.5]")
    p.add_argument("--every-frame", action="store_true",
                   help="START holds many molecules (e.g. train.xyz of `mlwfcalc molecules`): relax each with "
                        "GFN2-xTB and run MD from each (per temperature and seed); frames that broke or made a "
                        "covalent bond are not written (the MD runs on)")
    p.add_argument("--allow-reactions", action="store_true",
                   help="--every-frame: keep frames whose bond graph is no longer the start's")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser("molecules", help="enumerate small CHNO(F) molecules with RDKit, report their coverage and "
                                         "write one conformer per molecule, split by molecule")
    p.add_argument("-o", "--output", required=True, help="folder: train.xyz, val.xyz, test.xyz, molecules.csv, "
                                                         "coverage.json")
    p.add_argument("--n", type=int, default=500, help="distinct molecules (default 500)")
    p.add_argument("--max-heavy", type=int, default=9, help="most heavy atoms per molecule (default 9)")
    p.add_argument("--elements", default="CNOF", help="heavy elements, letters of CNOF (default CNOF)")
    p.add_argument("--split", default="0.8,0.1,0.1",
                   help="train,val,test fractions by molecule (default 0.8,0.1,0.1; 1,0,0 for training molecules only)")
    p.add_argument("--seed", type=int, default=0, help="seed of the enumeration, the split and the conformers")
    p.add_argument("--composition", choices=["qm9", "realistic"], default="qm9",
                   help="qm9 (default): QM9's heavy-atom make-up; realistic: fewer amines and imines, more esters, "
                        "acids and aromatics")
    p.add_argument("--exclude", nargs="+", metavar="FRAMES",
                   help="xyz files whose molecules (info 'smiles') are never enumerated, e.g. an earlier set's "
                        "validation and test frames")
    p.set_defaults(func=_cmd_molecules)

    p = sub.add_parser("select", help="de-duplicate a pool of sampled frames and pick the ones worth labelling")
    p.add_argument("frames", nargs="+", help="xyz/extxyz files (FILE@SLICE picks frames)")
    p.add_argument("-o", "--output", required=True, help="extxyz file of the picked frames (for `mlwfcalc label`)")
    p.add_argument("--model", required=True, help="a model of these molecules with a fitted uncertainty")
    p.add_argument("--n", type=int, required=True, help="frames to pick")
    p.add_argument("--by", choices=["fps", "uncertainty"], default="fps",
                   help="fps (default): farthest-point sampling in the model's features, from the most uncertain "
                        "frame; uncertainty: the most uncertain frames (active learning)")
    p.add_argument("--exclude", help="a label database: frames already in it are not picked again")
    p.add_argument("--tolerance", type=float, default=0.002,
                   help="near-duplicates: RMS difference of the interatomic distances below this, A (default 0.002)")
    _add_runtime(p)
    p.set_defaults(func=_cmd_select)

    p = sub.add_parser("label", help="label geometries with PySCF (RKS, MP2, CCSD or CCSD(T)) into an ASE database "
                                     "(resumable)")
    p.add_argument("frames", nargs="+", help="xyz/extxyz files, every frame; ASE's FILE@SLICE picks frames (traj.xyz@:400)")
    p.add_argument("-o", "--output", required=True, help="ASE SQLite database (.db); an existing one is resumed")
    p.add_argument("--method", default="rks", type=str.lower, choices=["rks", "mp2", "ccsd", "ccsd(t)"],
                   help="rks (default): Kohn-Sham energy, forces, F and dipole, the training labels of a model; "
                        "mp2, ccsd, ccsd(t): all-electron on RHF, energy, analytic forces and the finite-field "
                        "relaxed dipole (no F), the high-level labels a model is fine-tuned on")
    p.add_argument("--xc", help="functional of --method rks (default pbe)")
    p.add_argument("--basis", default="def2-svp", help="basis (default def2-svp)")
    p.add_argument("--grid-level", type=int, default=3, help="PySCF grids.level (default 3)")
    p.add_argument("--conv-tol", type=float, default=1e-10, help="SCF energy tolerance, Hartree (default 1e-10)")
    p.add_argument("--max-cycle", type=int, default=100, help="SCF cycles before a geometry counts as failed")
    p.add_argument("--gradient", choices=("exact", "ri-j"), default="exact",
                   help="forces of --method rks: exact (default), or ri-j: the gradient's Coulomb term "
                        "density-fitted, a PBE/def2-SVP label 16-34 %% cheaper, forces about 1 meV/A from "
                        "exact; energy, F and dipole unchanged")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes of the local Dask cluster (default: CPU count / threads)")
    p.add_argument("--threads", type=int, default=1, help="PySCF threads per geometry (default 1)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="run on the workers of this Dask scheduler (a cluster you already run; each worker needs "
                        "mlwfcalc installed) instead of a local cluster; this process alone writes the database")
    p.add_argument("--guess", metavar="MODEL",
                   help="start each Kohn-Sham SCF from this model's density (a shipped name or a model directory "
                        "of the labels' functional and basis): the same labels in fewer cycles; frames the model "
                        "cannot take start from minao; each row records its start in `guess`")
    p.add_argument("--no-forces", action="store_true",
                   help="--method rks without the nuclear gradient: F, energy and dipole at about half the cost, for "
                        "training frames whose forces no loss needs (keep forces on validation and test frames)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_label)

    p = sub.add_parser("pack-labels", help="archive the rows of a label database that an archive directory lacks "
                                           "as a new compact part (part-NNN.safetensors), to commit or share")
    p.add_argument("database", help="label database from `mlwfcalc label`")
    p.add_argument("-o", "--output", required=True, help="archive directory (created if missing)")
    p.add_argument("--fock-precision", choices=["float32", "float64"], default="float32",
                   help="storage of F: float32 (default; rounding below 2e-6 Hartree, half the size) or float64 "
                        "(exact)")
    p.set_defaults(func=_cmd_pack_labels)

    p = sub.add_parser("unpack-labels", help="write the archived rows a label database lacks (then `mlwfcalc "
                                             "label` resumes with the rest)")
    p.add_argument("archives", nargs="+", help="archive directories from `mlwfcalc pack-labels`")
    p.add_argument("-o", "--output", required=True, help="ASE SQLite database (created if missing)")
    p.set_defaults(func=_cmd_unpack_labels)

    p = sub.add_parser("train", help="train a Hamiltonian model (resumes a run directory that has a checkpoint)")
    p.add_argument("dataset", nargs="?", help="label database from `mlwfcalc label`")
    p.add_argument("-o", "--output", help="run directory (checkpoints, log.csv, learning_curve.png, best/)")
    p.add_argument("--config", help="TOML file with TrainConfig keys and a [model] table; flags override it")
    p.add_argument("--seed", type=int)
    p.add_argument("--n-train", type=_number, help="training molecules (count, or fraction like 0.9)")
    p.add_argument("--n-val", type=_number, help="validation molecules (count or fraction)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--max-steps", type=int, help="total steps; the learning-rate schedule spans them")
    p.add_argument("--max-minutes", type=float, help="stop with a checkpoint after this wall time")
    p.add_argument("--stop-at-step", type=int, help="stop with a checkpoint at this step (the schedule still "
                                                     "spans max_steps; run again without it to go on)")
    p.add_argument("--lr", type=float)
    p.add_argument("--val-every", type=int)
    p.add_argument("--dtype", choices=["float32", "float64"])
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--device", help="cpu (default), cuda, cuda:N or auto")
    p.add_argument("--channels", type=int, help="model: channels per parity and l (feature width 2 x channels)")
    p.add_argument("--num-layers", type=int, help="model: message-passing layers")
    p.add_argument("--lmax", type=int, help="model: highest l of features")
    p.add_argument("--cutoff", type=float, help="model: pair cutoff, Bohr")
    p.add_argument("--target", choices=["fock", "fock-hcore"], help="model: learn F, or F - H_core (delta)")
    p.add_argument("--no-normalisation", action="store_true", help="do not fit per-element output shifts/scales")
    p.add_argument("--orbital-loss-weight", type=float, help="weight of the occupied + LUMO orbital-energy loss")
    p.add_argument("--density-loss-weight", type=float,
                   help="weight of the first-order density-error loss (what an SCF guess from F gets wrong)")
    p.add_argument("--ddp", type=int, metavar="N", help="train in N processes on this machine with torch "
                   "DistributedDataParallel (gloo on CPUs, NCCL on GPUs; the batch is split between them); "
                   "for several machines launch `torchrun ... -m mlwfcalc.cli train` instead")
    p.add_argument("--init-from", help="start from this model directory's weights (same architecture); with "
                                        "--transfer, the Kohn-Sham model (directory or shipped name) to fine-tune")
    p.add_argument("--transfer", metavar="HIGH_LEVEL_DB",
                   help="fine-tune --init-from's network and a new energy head through the wavefunction on this "
                        "database's energies, forces and dipoles (`mlwfcalc label --method ccsd(t)`); the TOML "
                        "takes mlwfcalc.transfer.TransferConfig keys")
    _add_compositions(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("fit-domain", help="record a model's training domain and fit its uncertainty (train does "
                                          "this itself; for older models)")
    p.add_argument("model", help="model directory or shipped model name (written into it)")
    p.add_argument("dataset", help="the model's training label database (a transfer model's: its high-level set; "
                                   "its uncertainty is then calibrated on force errors)")
    p.add_argument("--seed", type=int, help="split seed (default: the model's training seed)")
    p.add_argument("--n-train", type=_number, help="default: the model's training split")
    p.add_argument("--n-val", type=_number, help="default: the model's validation split")
    _add_compositions(p)
    p.add_argument("--margin", type=float, default=0.1,
                   help="Angstrom beyond the distance ranges seen in training before a structure is refused "
                        "(default 0.1)")
    p.add_argument("--threshold-factor", type=float, default=2.0,
                   help="warn when the expected error (of F, or of the forces for a transfer model) passes this "
                        "many times the validation error (default 2)")
    _add_runtime(p)
    p.set_defaults(func=_cmd_fit_domain)

    p = sub.add_parser("train-energy", help="fit the energy head of a model to PySCF energies and forces")
    p.add_argument("model", help="model directory or shipped model name (the head is written into it)")
    p.add_argument("dataset", help="label database (same functional and basis as the model)")
    p.add_argument("--term", choices=["band", "half-core", "none"], default="none",
                   help="electronic term: none (default: the head alone, a plain ML potential on the network's "
                        "features; the most accurate for both shipped models), PhiSNet's 1/2 tr[P(H_core + F)], "
                        "or tr(PF)")
    p.add_argument("--features", choices=["scalars", "invariants"], default="invariants",
                   help="what the head sees of each atom: the network's 0e channels plus the squared norm of every "
                        "other channel (default), or the 0e channels alone")
    p.add_argument("--hidden", default="128,128,128", help="MLP hidden widths, comma separated (default 128,128,128)")
    p.add_argument("--energy-weight", type=float, default=1.0, help="loss weight on energy errors^2 (meV)")
    p.add_argument("--force-weight", type=float, default=1.0, help="loss weight on force errors^2 (meV/A)")
    p.add_argument("--epochs", type=int, default=800)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--seed", type=int, help="split seed (default: the model's training seed)")
    p.add_argument("--n-train", type=_number, help="default: the model's training split")
    p.add_argument("--n-val", type=_number, help="default: the model's validation split")
    p.add_argument("--test", help="a held-out label database to report test errors on")
    p.add_argument("--dry-run", action="store_true", help="report errors, write nothing")
    _add_runtime(p)
    p.set_defaults(func=_cmd_train_energy)

    p = sub.add_parser("evaluate", help="accuracy of a model on label databases (F, orbitals, gap, dipole, energy, "
                                        "forces; --scf: SCF warm start), one column per database")
    p.add_argument("model", help="model directory or shipped model name")
    p.add_argument("datasets", nargs="+", metavar="[LABEL=]DATASET",
                   help="label databases; every converged row is evaluated. A numeric LABEL (300=T300.db) is a "
                        "temperature for --trend")
    p.add_argument("--json", default="evaluation.json", help="where to write the metrics (default evaluation.json)")
    p.add_argument("--plot", default="parity.png",
                   help="parity plot PNG of the first dataset, or of the first group (default parity.png)")
    p.add_argument("--trend", help="PNG of the errors against the datasets' labels (several datasets)")
    p.add_argument("--group-by", choices=["size", "family"],
                   help="one column per molecule size (heavy atoms) or functional group of the one dataset "
                        "(family: labels of `mlwfcalc molecules` frames, which carry SMILES)")
    p.add_argument("--rotate", type=int, default=0, help="seed of the random rotation of each molecule (default 0)")
    p.add_argument("--no-rotate", action="store_true", help="evaluate the molecules as stored")
    p.add_argument("--overlap-subspace", type=float, metavar="T",
                   help="solve the predicted orbitals where the overlap's eigenvalues are >= T (0: the whole basis; "
                        "default: the model's choice, on its card)")
    p.add_argument("--scf", type=int, default=0, metavar="N",
                   help="also the SCF warm start on N evenly spaced molecules of each set: PySCF at the model's "
                        "level of theory (conv_tol 1e-9) from the predicted density and from minao, cycle ratio "
                        "and energy difference (two SCFs per molecule; default 0: skipped)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("predict", help="predict F and orbitals of one molecule; --compare checks against PySCF")
    p.add_argument("structure", help="xyz/extxyz file (last frame) or an ase.build.molecule name such as H2O")
    p.add_argument("--model", default="water-pbe-def2svp", help="model directory or shipped model name")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--compare", action="store_true", help="also run PySCF SCF and report the errors")
    _add_domain(p)
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("scf", help="PySCF SCF warm-started from the model; --compare also runs the minao guess")
    p.add_argument("structure", help="xyz/extxyz file (its last frame), or FILE@SLICE for several frames of a "
                                     "trajectory (traj.xyz@:10), each started from the one before plus the model's "
                                     "change of density (mlwfcalc.pyscf.TrajectoryGuess)")
    p.add_argument("--model", default="water-pbe-def2svp", help="model directory or shipped model name")
    p.add_argument("--xc", help="functional (default: the model's)")
    p.add_argument("--basis", help="basis (default: the model's; others get a projected guess)")
    p.add_argument("--charge", type=int, default=0)
    p.add_argument("--spin", type=int, default=0, help="2S")
    p.add_argument("--grid-level", type=int, default=3, help="PySCF grids.level (default 3)")
    p.add_argument("--conv-tol", type=float, default=1e-9, help="energy tolerance, Hartree (default 1e-9)")
    p.add_argument("--compare", action="store_true", help="also run from PySCF's default (minao) guess")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    _add_domain(p)
    p.set_defaults(func=_cmd_scf)

    p = sub.add_parser("models", help="list the shipped models")
    p.set_defaults(func=_cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except InputError as err:
        print(f"mlwfcalc {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
