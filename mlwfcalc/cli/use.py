"""``mlwfcalc evaluate | predict | scf | models``: the verbs that use a model.
"""

from __future__ import annotations

from pathlib import Path

from ..validation import InputError
from ._common import _add_domain, _set_threads


def _add_model(parser, more: str = "") -> None:
    parser.add_argument("--model", default="auto",
                        help="model directory, shipped model name, or auto (default): the shipped model whose "
                             f"training domain covers the molecule (`mlwfcalc models`){more}")


def _model_for(spec: str, atoms, device: str, required: bool = True):
    """The model ``--model`` names, ``auto``'s choice for ``atoms`` (printed), or (``required`` False) None where
    no shipped model covers them."""
    from ..choice import choose_model, is_auto
    from ..domain import OutOfDomainError
    from ..pyscf import resolve_model

    if is_auto(spec):
        try:
            spec = choose_model(atoms.numbers, say=False)
        except OutOfDomainError:
            if required:
                raise
            print(f"model: none covers {atoms.get_chemical_formula()}; PySCF's minao guess")
            return None
        print(f"model: {spec} (auto, for {atoms.get_chemical_formula()})")
    return resolve_model(spec, device)


def add_evaluate_parser(sub) -> None:
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
    p.set_defaults(func=run_evaluate)


def run_evaluate(args) -> None:
    from ..data.dataset import LabelledDataset
    from ..predictor import load_model
    from ..training.evaluation import evaluate, groups_of, plot_trend, write_report

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


def add_predict_parser(sub) -> None:
    p = sub.add_parser("predict", help="predict F and orbitals of one molecule; --compare checks against PySCF")
    p.add_argument("structure", help="xyz/extxyz file (last frame) or an ase.build.molecule name such as H2O")
    _add_model(p)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--compare", action="store_true", help="also run PySCF SCF and report the errors")
    p.add_argument("--mode", choices=["ml", "harris", "variational"],
                   help="energy and forces from the energy head (ml) or the Kohn-Sham functional at the model's "
                        "density (harris, variational; exact forces); default the model's recommended route "
                        "(`mlwfcalc models`)")
    _add_domain(p)
    p.set_defaults(func=run_predict)


def run_predict(args) -> None:
    import time

    import numpy as np
    from ase.units import Bohr, Hartree

    from ..data.sampling import load_start_structure
    from ..pyscf import reference_scf

    atoms = load_start_structure(args.structure)
    model = _model_for(args.model, atoms, args.device)
    model.predict(atoms, domain=args.domain)  # warm-up: the first call allocates and builds caches
    start = time.perf_counter()
    result = model.predict(atoms, domain=args.domain)
    seconds = time.perf_counter() - start
    n_occ = int((result.mo_occ > 0).sum())
    print(f"{atoms.get_chemical_formula()} with {model.name}: {result.mol.nao} AOs ({model.basis}), "
          f"{n_occ} occupied orbitals, predicted in {1000 * seconds:.1f} ms on {model.device}")
    print(f"HOMO {result.mo_energy[n_occ - 1] * Hartree:.3f} eV, LUMO {result.mo_energy[n_occ] * Hartree:.3f} eV, "
          f"gap {result.homo_lumo_gap * Hartree:.3f} eV")
    mode = args.mode or model.model.energy_route
    if mode in ("harris", "variational") and model.model.record.get("transfer"):
        raise InputError(f"{model.name} is a transfer model (its energies are {model.model.record['transfer']['high_level']}"
                         "): they come from its energy head, --mode ml")
    routed = None
    if mode == "ml" and result.energy is not None:
        print(f"energy (energy head) {result.energy:.8f} Hartree")
    elif mode in ("harris", "variational") and result.spurious_orbitals:
        print(f"no {mode} energy: the model's density holds spurious orbitals (below)")
    elif mode in ("harris", "variational"):
        from ..functional import functional_energy

        start = time.perf_counter()
        routed = functional_energy(model, atoms, mode, forces="exact")
        print(f"energy ({mode} at the model's density) {routed.energy:.8f} Hartree, largest force "
              f"{np.abs(routed.forces).max() * Hartree / Bohr:.3f} eV/A ({time.perf_counter() - start:.1f} s)")
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
        if mode == "ml" and result.energy is not None:
            print(f"energy error of the energy head {1000 * Hartree * (result.energy - mf.e_tot):+.2f} meV")
        if routed is not None:
            forces = -model.theory.nuclear_gradient(mf)
            print(f"{mode}: energy error {1000 * Hartree * (routed.energy - mf.e_tot) / len(atoms):+.2f} meV/atom, "
                  f"force MAE {1000 * Hartree / Bohr * np.abs(routed.forces - forces).mean():.1f} meV/A")


def add_scf_parser(sub) -> None:
    p = sub.add_parser("scf", help="PySCF SCF warm-started from the model; --compare also runs the minao guess")
    p.add_argument("structure", help="xyz/extxyz file (its last frame), or FILE@SLICE for several frames of a "
                                     "trajectory (traj.xyz@:10), each started from the one before plus the model's "
                                     "change of density (mlwfcalc.pyscf.TrajectoryGuess)")
    _add_model(p, "; a state (--charge, --spin) or molecule no model covers starts from PySCF's minao guess")
    p.add_argument("--xc", help="functional (default: the model's; PBE without one)")
    p.add_argument("--basis", help="basis (default: the model's, def2-SVP without one; others get a projected guess)")
    p.add_argument("--charge", type=int, default=0, help="total charge (default 0)")
    p.add_argument("--spin", type=int, default=0, help="2S, the number of unpaired electrons (default 0: RKS; "
                                                       "above 0: UKS)")
    p.add_argument("--grid-level", type=int, default=3, help="PySCF grids.level (default 3)")
    p.add_argument("--conv-tol", type=float, default=1e-9, help="energy tolerance, Hartree (default 1e-9)")
    p.add_argument("--compare", action="store_true", help="also run from PySCF's default (minao) guess")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    _add_domain(p)
    p.set_defaults(func=run_scf)


def run_scf(args) -> None:
    import time
    from functools import partial

    import numpy as np
    from ase.io import read
    from ase.io.formats import parse_filename
    from ase.units import Hartree

    from dataclasses import replace

    from ..pyscf import TrajectoryGuess, scf_settings
    from ..validation import check_state

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
        check_state(atoms.numbers, args.charge, args.spin, where=f"frame {k} of {name}" if len(images) > 1 else None)
    model = _model_for(args.model, images[0], args.device, required=False)
    settings = scf_settings(model, args.conv_tol)
    settings = replace(settings, xc=args.xc or settings.xc, basis=args.basis or settings.basis,
                       grid_level=args.grid_level)
    method = "UKS" if args.spin else "RKS"
    guesser = TrajectoryGuess(model or "auto", domain=args.domain)  # several frames: each from the one before
    cycles, reference_cycles, unconverged = [], [], []
    for k, atoms in enumerate(images):
        mol = gto.M(atom=[(s, p) for s, p in zip(atoms.get_chemical_symbols(), atoms.positions)], unit="Angstrom",
                    basis=settings.basis, charge=args.charge, spin=args.spin, verbose=0)
        make = partial(settings.make_scf, mol)
        mf = make()
        start = time.perf_counter()
        dm0 = guesser.guess(mf)
        guess_seconds = time.perf_counter() - start
        mf.kernel(dm0=dm0)
        seconds = time.perf_counter() - start
        source = ("the previous frame's density and the model" if guesser.used_history else
                  f"the {guesser.model.name} guess" if guesser.model is not None else "PySCF's minao guess")
        if mf.converged:  # an unconverged frame is reported below; the next one starts from the model alone
            guesser.update(mf)
        else:
            guesser.reset()
        cycles.append(mf.cycles)
        status = "converged" if mf.converged else "NOT converged"
        if not mf.converged:
            unconverged.append(k)
        where = f"frame {k}: " if len(images) > 1 else ""
        print(f"{where}{atoms.get_chemical_formula()} {method} {mf.xc.upper()}/{mol.basis}: E = {mf.e_tot:.10f} Hartree "
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


def add_models_parser(sub) -> None:
    description = ("List the shipped models: the molecules each covers (its training domain), what it is fit for "
                   "(MD, optimisation, SCF guess, orbitals) and its headline held-out errors, read from its "
                   "recorded evaluation (the same figures as the README's table). --model auto picks the first "
                   "that covers a molecule.")
    p = sub.add_parser("models", help="list the shipped models, what each is fit for and its errors",
                       description=description)
    p.set_defaults(func=run_models)


def _energy_route(directory: Path) -> str:
    """The model's recommended energy route (the calculator's default mode) and what it was chosen on."""
    import json

    config = json.loads((directory / "config.json").read_text())
    record = config.get("energy_route")
    if record:
        return f"mode={record['recommended']!r} (chosen on {record['chosen_on']})"
    return "mode='ml', the energy head" if "energy" in config else "mode='harris' (no energy head)"


def run_models(args) -> None:
    from ..catalogue import describe, summarise
    from ..domain import TrainingDomain
    from ..io import MODELS_DIR, list_models

    models = list_models()
    if not models:
        print(f"no models in {MODELS_DIR}")
    for m in models:
        if "error" in m:
            print(f"{m['name']}: unusable ({m['error']})")
            continue
        domain = TrainingDomain.from_dict(m["domain"]).summary() if m.get("domain") else "unknown"
        level = f"F at {m['functional'].upper()}/{m['basis']}"
        if m.get("energy_level") and m["energy_level"].lower() != f"{m['functional']}/{m['basis']}".lower():
            level += f", energies and forces at {m['energy_level']}"
        route = _energy_route(Path(m["path"]))
        print(f"{m['name']}: {level}, elements {' '.join(m['elements'])}, domain {domain}")
        print(f"  energies and forces by default: {route}")
        print("  " + describe(summarise(Path(m["path"]))).replace("\n", "\n  "))
        print(f"  card {Path(m['path']) / 'README.md'}")
