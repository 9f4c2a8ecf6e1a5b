"""``mlwfcalc molecules | sample | select | label | pack-labels | unpack-labels``: the data verbs, from
molecules and geometries to label databases and their archives.
"""

from __future__ import annotations

from ..validation import InputError
from ._common import _add_runtime, _numbers, _set_threads


def add_sample_parser(sub) -> None:
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
    p.set_defaults(func=run_sample)


def run_sample(args) -> None:
    from ..data.sampling import (load_start_structure, sample_md, sample_normal_modes, sample_tautomer_path,
                                 sample_trajectories)

    temperatures, seeds = _numbers(args.temperature, float, "--temperature"), _numbers(args.seed, int, "--seed")
    if (args.method == "tautomer-path") != (args.mapping is not None):
        raise InputError("--method tautomer-path needs --mapping (and --mapping belongs to it)")
    if args.method == "tautomer-path":
        from ..data.labelling import read_images

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
        from ..data.labelling import read_images

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


def add_molecules_parser(sub) -> None:
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
    p.set_defaults(func=run_molecules)


def run_molecules(args) -> None:
    import csv
    import json
    from pathlib import Path

    from ase.io import write

    from ..data.molecules import conformer, coverage, enumerate_molecules, split_molecules

    folder = Path(args.output)
    if folder.exists() and any(folder.iterdir()):
        raise InputError(f"{folder} is not empty; choose a new folder")
    exclude = []
    if args.exclude:
        from ..data.labelling import read_images
        from ..data.molecules import smiles_of

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


def add_select_parser(sub) -> None:
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
    p.set_defaults(func=run_select)


def run_select(args) -> None:
    import warnings

    import numpy as np
    from ase.io import write

    from ..data.labelling import read_images
    from ..data.selection import deduplicate, pool_summary, select_frames
    from ..domain import OutOfDomainWarning
    from ..predictor import load_model
    from ..uncertainty import QUANTITIES

    _set_threads(args.threads)
    pool = [atoms for _, _, atoms in read_images(args.frames)]
    if args.exclude:
        from ..data.database import LabelDatabase
        from ..data.records import geometry_key

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


def add_label_parser(sub) -> None:
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
    p.set_defaults(func=run_label)


def run_label(args) -> None:
    from ..data.labelling import label_frames, read_frames
    from ..theory import LevelOfTheory

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


def add_pack_labels_parser(sub) -> None:
    p = sub.add_parser("pack-labels", help="archive the rows of a label database that an archive directory lacks "
                                           "as a new compact part (part-NNN.safetensors), to commit or share")
    p.add_argument("database", help="label database from `mlwfcalc label`")
    p.add_argument("-o", "--output", required=True, help="archive directory (created if missing)")
    p.add_argument("--fock-precision", choices=["float32", "float64"], default="float32",
                   help="storage of F: float32 (default; rounding below 2e-6 Hartree, half the size) or float64 "
                        "(exact)")
    p.set_defaults(func=run_pack_labels)


def run_pack_labels(args) -> None:
    from ..data.archive import pack_labels

    path, rows = pack_labels(args.database, args.output, fock_precision=args.fock_precision)
    print(f"{args.output}: every row of {args.database} archived already" if path is None else
          f"wrote {rows} rows of {args.database} to {path} ({path.stat().st_size / 2**20:.1f} MiB)")


def add_unpack_labels_parser(sub) -> None:
    p = sub.add_parser("unpack-labels", help="write the archived rows a label database lacks (then mlwfcalc "
                                             "label resumes with the rest)")
    p.add_argument("archives", nargs="+", help="archive directories from `mlwfcalc pack-labels`")
    p.add_argument("-o", "--output", required=True, help="ASE SQLite database (created if missing)")
    p.set_defaults(func=run_unpack_labels)


def run_unpack_labels(args) -> None:
    from ..data.archive import unpack_labels

    written, skipped = unpack_labels(args.archives, args.output)
    print(f"wrote {written} archived rows to {args.output} ({skipped} were there already)")
