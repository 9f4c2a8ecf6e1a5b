"""The ``mlwfcalc`` command line: ``mlwfcalc sample | label | ...``.

Bad input ends with one line ``mlwfcalc <command>: error: ...`` and exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from .validation import InputError


def _cmd_sample(args) -> None:
    from .data.sampling import load_start_structure, sample_md

    start = load_start_structure(args.start)
    frames = sample_md(start, args.output, temperature_K=args.temperature, n_frames=args.frames,
                       interval=args.interval, timestep_fs=args.timestep, equilibration=args.equilibration,
                       friction_per_fs=args.friction, seed=args.seed, overwrite=args.overwrite,
                       progress=not args.quiet)
    print(f"wrote {len(frames)} frames of {start.get_chemical_formula()} to {args.output} "
          f"(GFN2-xTB Langevin MD, {args.temperature} K, every {args.interval} steps of {args.timestep} fs)")


def _cmd_label(args) -> None:
    from .data.database import LabelSettings
    from .data.labelling import label_frames, read_frames

    settings = LabelSettings(xc=args.xc, basis=args.basis, grid_level=args.grid_level, conv_tol=args.conv_tol,
                             max_cycle=args.max_cycle)
    frames = read_frames(args.frames)
    summary = label_frames(frames, args.output, settings, workers=args.workers,
                           threads_per_worker=args.threads, progress=not args.quiet)
    print(summary)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlwfcalc", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sample", help="sample geometries with GFN2-xTB Langevin MD (tblite)")
    p.add_argument("start", help="xyz/extxyz file (last frame is used) or an ase.build.molecule name such as H2O")
    p.add_argument("-o", "--output", required=True, help="extxyz file to write")
    p.add_argument("--temperature", type=float, default=500.0, help="K (default 500, as MD17)")
    p.add_argument("--frames", type=int, default=100, help="number of frames (default 100)")
    p.add_argument("--interval", type=int, default=20, help="MD steps between frames (default 20)")
    p.add_argument("--timestep", type=float, default=0.5, help="fs (default 0.5)")
    p.add_argument("--equilibration", type=int, default=200, help="MD steps before the first frame (default 200)")
    p.add_argument("--friction", type=float, default=0.01, help="Langevin friction in 1/fs (default 0.01)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser("label", help="label geometries with PySCF RKS into an ASE database (resumable)")
    p.add_argument("frames", nargs="+", help="xyz/extxyz files; every frame is labelled")
    p.add_argument("-o", "--output", required=True, help="ASE SQLite database (.db); an existing one is resumed")
    p.add_argument("--xc", default="pbe", help="functional (default pbe)")
    p.add_argument("--basis", default="def2-svp", help="basis (default def2-svp)")
    p.add_argument("--grid-level", type=int, default=3, help="PySCF grids.level (default 3)")
    p.add_argument("--conv-tol", type=float, default=1e-10, help="SCF energy tolerance, Hartree (default 1e-10)")
    p.add_argument("--max-cycle", type=int, default=100, help="SCF cycles before a geometry counts as failed")
    p.add_argument("--workers", type=int, default=None, help="parallel processes (default: CPU count / threads)")
    p.add_argument("--threads", type=int, default=1, help="PySCF threads per process (default 1)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_label)
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
