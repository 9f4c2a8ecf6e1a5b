"""``mlwfcalc train (--transfer) | train-energy | fit-domain``: the verbs that make a model (the code they
run is :mod:`mlwfcalc.training`).
"""

from __future__ import annotations

from ..validation import InputError
from ._common import _add_compositions, _add_runtime, _number, _set_threads


def add_train_parser(sub) -> None:
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
    p.add_argument("--target", choices=["fock", "fock-hcore", "fock-h0"],
                   help="model: learn F, or F - H_core, or F - H0 (the Kohn-Sham matrix of the atoms' minao densities; "
                        "its grid level and RI-J in the TOML's [model.zeroth_step], default grid 0 with RI-J)")
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
                        "takes mlwfcalc.training.transfer.TransferConfig keys")
    p.add_argument("--functional", metavar="ROUTE", choices=["harris", "variational"],
                   help="train --init-from's network end to end so that the energies and forces of this functional "
                        "route at its density match DATASET's Kohn-Sham labels (the labels' F as regulariser); the "
                        "TOML takes mlwfcalc.training.functional_fit.FunctionalFitConfig keys")
    p.add_argument("--validation-molecules", metavar="JSON",
                   help="a JSON list of SMILES whose frames are the validation split (e.g. the --init-from "
                        "model's own val_molecules, so a fine-tune on more labels is validated as it was); "
                        "default: the seeded split of --n-train/--n-val")
    _add_compositions(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_train)


def run_train(args) -> None:
    if args.transfer and args.functional:
        raise InputError("--transfer and --functional are two kinds of fine-tuning; choose one")
    if args.transfer:
        return run_transfer(args)
    if args.functional:
        return run_functional_fit(args)
    from ..nn.model import ModelConfig
    from ..training.optimisation import TrainConfig
    from ..training.trainer import Trainer

    overrides = {k: getattr(args, k) for k in ("dataset", "output", "seed", "batch_size", "max_steps", "max_minutes",
                                               "lr", "val_every", "dtype", "threads", "n_train", "n_val",
                                               "orbital_loss_weight", "density_loss_weight", "init_from",
                                               "device", "validation_molecules")}
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
        from ..data.database import LabelDatabase

        model_overrides["basis"] = LabelDatabase(config.dataset).settings.basis
    config.model = ModelConfig(**{**config.model.to_dict(), **model_overrides})
    from pathlib import Path

    if args.ddp and args.ddp > 1:
        from ..training.checkpoint import CHECKPOINT_META, read_checkpoint_meta
        from ..training.distributed import launch
        from ..training.trainer import train_process

        launch(train_process, args.ddp, config.to_dict(), not args.quiet, args.stop_at_step)
        output = Path(config.output)
        finished = (output / CHECKPOINT_META).exists() and read_checkpoint_meta(output)["step"] >= config.max_steps
    else:
        trainer = Trainer(config, progress=not args.quiet)
        print(f"model: {trainer.model.num_parameters():,} parameters; "
              f"{_frames(trainer.data.dataset, trainer.data.train_index)} train / "
              f"{_frames(trainer.data.dataset, trainer.data.val_index)} validation; starting at step {trainer.step}")
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

    from ..data.dataset import LabelledDataset
    from ..predictor import load_model
    from ..training.domain_fit import fit_and_save_domain

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*no recorded training domain.*")
        model = load_model(model_dir, device=device)
    dataset = LabelledDataset(model.model.record["training"]["dataset"])
    train_index, val_index, _ = _model_split(model, dataset)
    return fit_and_save_domain(model, dataset, train_index, val_index, compositions=args.compositions,
                               progress=not args.quiet)


def run_transfer(args) -> None:
    """``mlwfcalc train --transfer HIGH_LEVEL_DB --init-from MODEL``: fine-tune through the wavefunction."""
    from ..training.transfer import TransferConfig, TransferTrainer

    if args.dataset:
        raise InputError("with --transfer the labels are the --transfer database; drop the DATASET argument")
    if args.validation_molecules:
        raise InputError("--validation-molecules does not go with --transfer (its split is of the --transfer "
                         "database, seeded by --seed, --n-train and --n-val)")
    overrides = {k: getattr(args, k) for k in ("output", "seed", "batch_size", "max_steps", "max_minutes", "lr",
                                               "val_every", "dtype", "threads", "n_train", "n_val", "init_from",
                                               "device")}
    overrides["high_level"] = args.transfer
    trainer = TransferTrainer(TransferConfig(**_fine_tuning_settings(args, TransferConfig, overrides)),
                              progress=not args.quiet)
    print(f"fine-tuning {trainer.config.init_from} on {trainer.high_level.name} labels: "
          f"{_frames(trainer.dataset, trainer.train_index)} train / {_frames(trainer.dataset, trainer.val_index)} "
          f"validation; starting at step {trainer.step}")
    summary = trainer.run(stop_at_step=args.stop_at_step)
    best = min(summary["history"], key=lambda row: row["val_loss"])
    print(f"step {summary['step']}: best at step {best['step']:.0f}: energy MAE {best['val_energy_mae_mev']:.2f} meV "
          f"({best['val_energy_mae_offset_free_mev']:.2f} offset-free), forces {best['val_force_mae_mev_per_a']:.1f} "
          f"meV/A, dipole {best['val_dipole_mae_md']:.1f} mD per component, F moved "
          f"{best['val_fock_shift_rms_uha']:.0f} micro-Hartree (RMS); best model in {trainer.output}/best"
          + (f", final weights in {trainer.output}/last" if (trainer.output / "last").exists() else ""))
    if trainer.step >= trainer.config.max_steps or args.stop_at_step is None:  # as `train` does
        _refit_uncertainty(trainer, args)


def _fine_tuning_settings(args, config_class, overrides: dict) -> dict:
    """The settings of a fine-tuning run: the TOML's keys (only ``config_class``'s), the flags over them."""
    import dataclasses

    known = {f.name for f in dataclasses.fields(config_class)}
    data = {}
    if args.config:
        from ..training.optimisation import TrainConfig

        data = TrainConfig.read_toml(args.config)
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"{args.config}: {', '.join(unknown)} are not fine-tuning settings "
                             f"({', '.join(sorted(known))})")
    data.update({k: v for k, v in overrides.items() if v is not None})
    if not data.get("output"):
        raise InputError("give -o OUTPUT (the run directory) or output in --config")
    return data


def run_functional_fit(args) -> None:
    """``mlwfcalc train DATASET --functional ROUTE --init-from MODEL``: the functional route end to end."""
    from ..predictor import load_model
    from ..training.domain_fit import fit_and_save_domain
    from ..training.functional_fit import FunctionalFitConfig, FunctionalTrainer

    overrides = {k: getattr(args, k) for k in ("dataset", "output", "seed", "batch_size", "max_steps", "max_minutes",
                                               "lr", "val_every", "dtype", "threads", "n_train", "n_val", "init_from",
                                               "device", "validation_molecules")}
    overrides["route"] = args.functional
    trainer = FunctionalTrainer(FunctionalFitConfig(**_fine_tuning_settings(args, FunctionalFitConfig, overrides)),
                                progress=not args.quiet)
    print(f"training {trainer.config.init_from}'s {trainer.config.route} route end to end: {len(trainer.train_index)} "
          f"train / {len(trainer.val_index)} validation frames; starting at step {trainer.step}")
    summary = trainer.run(stop_at_step=args.stop_at_step)
    first, best = summary["history"][0], min(summary["history"], key=lambda row: row["val_loss"])
    print(f"step {summary['step']}: best at step {best['step']:.0f}: energy MAE "
          f"{best['val_energy_mae_mev_per_atom']:.2f} meV/atom (from {first['val_energy_mae_mev_per_atom']:.2f}), "
          f"forces {best['val_force_rmse_mev_per_a']:.0f} meV/A RMSE along random directions (from "
          f"{first['val_force_rmse_mev_per_a']:.0f}), F {best['val_fock_rmse_uha']:.0f} micro-Hartree RMSE (from "
          f"{first['val_fock_rmse_uha']:.0f}); best model in {trainer.output}/best")
    if trainer.step >= trainer.config.max_steps or args.stop_at_step is None:  # its features moved: a new uncertainty
        for name in ("best", "last"):
            if (trainer.output / name).exists():
                model = load_model(trainer.output / name, device=trainer.config.device)
                fitted = fit_and_save_domain(model, trainer.dataset, trainer.train_index, trainer.val_index,
                                             compositions=args.compositions, progress=not args.quiet)
                print(f"{name}/: training domain and uncertainty fitted: {_fitted(fitted)}")


def _refit_uncertainty(trainer, args) -> None:
    """The fine-tuned model's energy follows the high level, where the starting model's uncertainty (distance
    to its Kohn-Sham data, calibrated on F) says nothing: fit the domain and the uncertainty of the best (and
    last) model on this run's own split of the high-level set, calibrated on the validation force errors."""
    from ..predictor import load_model
    from ..training.domain_fit import fit_and_save_domain

    for name in ("best", "last"):  # last/: the final weights, once the schedule has ended
        if not (trainer.output / name).exists():
            continue
        model = load_model(trainer.output / name, device=trainer.config.device)
        fitted = fit_and_save_domain(model, trainer.dataset, trainer.train_index, trainer.val_index,
                                     quantity="forces", compositions=args.compositions, progress=not args.quiet)
        print(f"{name}/: training domain and uncertainty fitted on {trainer.config.high_level}: {_fitted(fitted)}")


def add_train_energy_parser(sub) -> None:
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
    p.set_defaults(func=run_train_energy)


def run_train_energy(args) -> None:
    import json
    import time

    import numpy as np

    from ..data.dataset import LabelledDataset
    from ..io import save_model
    from ..predictor import load_model
    from ..training.energy_fit import EnergyFitConfig, errors, fit_energy_head, model_errors, precompute

    _set_threads(args.threads)
    model = load_model(args.model, device=args.device)
    dataset = LabelledDataset(args.dataset)
    _check_labels(model, dataset)
    train_index, val_index, seed = _model_split(model, dataset, args.seed, args.n_train, args.n_val)
    # SCF-only frames (`label --no-forces`) carry no force for the head's loss: the head is fitted on the others
    # of the same split, so validation molecules stay the network's own
    without_forces = {int(i) for i in np.concatenate([train_index, val_index]) if dataset.samples[int(i)].forces is None}
    if without_forces:
        train_index, val_index = ([i for i in index if int(i) not in without_forces] for index in (train_index, val_index))
        if not train_index or not val_index:
            raise InputError(f"{args.dataset}: the model's split has no {'training' if not train_index else 'validation'} "
                             "frame with forces (labelled without them, `mlwfcalc label --no-forces`); the energy head's "
                             "force loss needs some: label a few with forces")
        print(f"{len(without_forces)} frames labelled without forces left out; the head is fitted on "
              f"{len(train_index)} training and {len(val_index)} validation frames")
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
               "left_out_without_forces": len(without_forces),
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


def add_fit_domain_parser(sub) -> None:
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
    p.set_defaults(func=run_fit_domain)


def run_fit_domain(args) -> None:
    import warnings

    from ..data.dataset import LabelledDataset
    from ..predictor import load_model
    from ..training.domain_fit import fit_and_save_domain

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


def _frames(dataset, indices) -> str:
    """``"N frames"``, with ``" of M molecules"`` when the labels name their molecules."""
    molecules = dataset.molecules_of(indices)
    return f"{len(indices)} frames" + (f" of {len(molecules)} molecules" if molecules else "")


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

    if config.get("validation_molecules") and given == (None, None, None) and not on_transfer_split:
        train_index, val_index = dataset.split_by_molecules(training["val_molecules"], f"{model.name}'s record")
    else:
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
