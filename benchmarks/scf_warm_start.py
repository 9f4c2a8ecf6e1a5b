"""SCF cycles and wall time from the model's guess against PySCF's guesses and the previous MD step.

    python benchmarks/scf_warm_start.py --model water-pbe-def2svp --frames work/water-md500-s1.xyz \
        [--n 20] [--md-steps 10] [--md-stride 1] [--guesses minao,model] [--plot docs/scf_warm_start_water.png]

Part 1, held-out geometries (every ``len/n``-th frame of ``--frames`` inside the model's training domain;
the model refuses to guess outside it, so those are left out and counted): for each guess (minao, atom,
huckel, sap, the model; ``--guesses`` picks some) the SCF at the model's level of theory (functional,
grid level) with ``conv_tol`` 1e-9; the model's wall time includes its inference and the PySCF overlap. Every run must
end within 1e-8 Hartree of the minao energy (checked, reported).

Part 2, along an MD trajectory: a short NVE run (0.5 fs steps, the model's ML forces, or GFN2-xTB's
for a model without an energy head) from the first frame, an SCF every ``--md-stride`` steps: from
minao, from the model, from the previous SCF's converged density, and from both
(``mlwfcalc.pyscf.TrajectoryGuess``: the previous density plus the model's change of density).

Prints Markdown tables (mean cycles, ratio to minao, mean wall time, ratio) and writes a bar plot.
"""

import argparse
import statistics
import time

import numpy as np
import torch
from ase.io import read
from ase.md.verlet import VelocityVerlet
from ase.units import fs
from pyscf import lib

from mlwfcalc import MLWFCalculator
from mlwfcalc.data.sampling import thermalize
from mlwfcalc.pyscf import TrajectoryGuess, guess_dm, reference_scf, resolve_model

GUESSES = ["minao", "atom", "huckel", "sap"]


def run_scf(model, mol, guess, conv_tol):
    """``(cycles, seconds, energy, mf)`` of one SCF from ``guess`` (a PySCF key, "model", or a density)."""
    mf = reference_scf(model, mol, conv_tol=conv_tol)
    start = time.perf_counter()
    if isinstance(guess, str) and guess != "model":
        mf.init_guess = guess
        mf.kernel()
    else:
        mf.kernel(dm0=guess_dm(mol, model) if isinstance(guess, str) else guess)
    seconds = time.perf_counter() - start
    if not mf.converged:
        raise RuntimeError(f"SCF from {guess if isinstance(guess, str) else 'density'} did not converge")
    return mf.cycles, seconds, mf.e_tot, mf


def table(rows: dict[str, list[tuple[int, float]]], title: str) -> str:
    ref_cycles = statistics.mean(c for c, _ in rows["minao"])
    ref_seconds = statistics.mean(s for _, s in rows["minao"])
    lines = [f"\n{title}\n", "| guess | mean cycles | cycles / minao | mean wall (s) | wall / minao |",
             "|---|---|---|---|---|"]
    for name, values in rows.items():
        cycles = statistics.mean(c for c, _ in values)
        seconds = statistics.mean(s for _, s in values)
        lines.append(f"| {name} | {cycles:.2f} | {cycles / ref_cycles:.2f} | {seconds:.3f} | "
                     f"{seconds / ref_seconds:.2f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="water-pbe-def2svp")
    parser.add_argument("--frames", required=True, help="held-out geometries (extxyz)")
    parser.add_argument("--n", type=int, default=20, help="geometries for part 1 (0: skip)")
    parser.add_argument("--md-steps", type=int, default=10, help="SCFs along the MD of part 2 (0: skip)")
    parser.add_argument("--md-stride", type=int, default=1, help="MD steps of 0.5 fs between two SCFs (default 1)")
    parser.add_argument("--conv-tol", type=float, default=1e-9)
    parser.add_argument("--guesses", default=",".join(GUESSES + ["model"]),
                        help="part 1's guesses, comma separated; minao (the reference) is always run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--plot", help="bar plot PNG")
    args = parser.parse_args()
    chosen = ["minao"] + [g.strip() for g in args.guesses.split(",") if g.strip() and g.strip() != "minao"]
    unknown = set(chosen) - set(GUESSES + ["model"])
    if unknown:
        parser.error(f"--guesses {', '.join(sorted(unknown))}: choose from {', '.join(GUESSES + ['model'])}")
    torch.set_num_threads(args.threads)
    lib.num_threads(args.threads)
    model = resolve_model(args.model, "cpu")
    frames = read(args.frames, index=":")
    if model.domain is not None:  # the model refuses to guess for a molecule outside its training domain
        inside = [a for a in frames if not model.domain.violations(a.numbers, a.positions)]
        if not inside:
            parser.error(f"every geometry of {args.frames} is outside the training domain of {args.model}")
        if len(inside) < len(frames):
            print(f"{len(frames) - len(inside)} of the {len(frames)} geometries are outside the model's training "
                  "domain (its guess refuses them): left out")
        frames = inside
    start = frames[0]
    frames = frames[:: max(1, len(frames) // args.n)][: args.n] if args.n > 0 else []
    run_scf(model, model.make_mole(start), "model", args.conv_tol)  # warm-up
    rows = {g: [] for g in chosen} if frames else {}
    worst = 0.0
    for atoms in frames:
        mol = model.make_mole(atoms)
        energies = {}
        for guess in rows:
            cycles, seconds, energies[guess], _ = run_scf(model, mol, guess, args.conv_tol)
            rows[guess].append((cycles, seconds))
        worst = max(worst, max(abs(e - energies["minao"]) for e in energies.values()))
    if frames:
        print(f"model {args.model}; {len(frames)} held-out geometries from {args.frames}; conv_tol {args.conv_tol}")
        print(f"largest |E - E_minao| over all runs: {worst:.1e} Hartree")
        print(table(rows, "Held-out geometries"))
    md_rows = {}
    if args.md_steps:
        md_rows = {"minao": [], "model": [], "previous step": [], "model + previous step": []}
        atoms = start.copy()
        if model.energy_head is not None:
            atoms.calc, driver = MLWFCalculator(model), "the model's ML forces"
        else:
            from tblite.ase import TBLite

            atoms.calc, driver = TBLite(method="GFN2-xTB", verbosity=0), "GFN2-xTB forces (the model has no energy head)"
        thermalize(atoms, 500, np.random.default_rng(0))
        dynamics = VelocityVerlet(atoms, timestep=0.5 * fs)
        first = run_scf(model, model.make_mole(atoms), "minao", args.conv_tol)[3]
        previous, trajectory = first.make_rdm1(), TrajectoryGuess(model)
        trajectory.update(first)
        worst = 0.0
        for _ in range(args.md_steps):
            dynamics.run(args.md_stride)
            mol = model.make_mole(atoms)
            energies = {}
            for name, guess in (("minao", "minao"), ("model", "model"), ("previous step", previous)):
                cycles, seconds, energies[name], mf = run_scf(model, mol, guess, args.conv_tol)
                md_rows[name].append((cycles, seconds))
            previous = mf.make_rdm1()
            mf = reference_scf(model, mol, conv_tol=args.conv_tol)
            start = time.perf_counter()
            energies["model + previous step"] = trajectory.run(mf)  # the model's inference timed in
            md_rows["model + previous step"].append((mf.cycles, time.perf_counter() - start))
            worst = max(worst, max(abs(e - energies["minao"]) for e in energies.values()))
        print(f"\nMD: {args.md_steps} SCFs {0.5 * args.md_stride:g} fs apart (NVE, 500 K start, {driver}); "
              f"largest |E - E_minao| {worst:.1e} Hartree")
        print(table(md_rows, "Along an MD trajectory"))
    if args.plot:
        plot(rows, md_rows, args.plot, args.model)


def plot(rows, md_rows, path, model_name):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(data, title) for data, title in ((rows, "held-out geometries"), (md_rows, "along MD"))
              if data]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    for ax, (data, title) in zip(axes[0], panels):
        names = list(data)
        ax.bar(names, [statistics.mean(c for c, _ in data[n]) for n in names],
               color=["C1" if "model" in n else "C0" for n in names])
        ax.set_ylabel("mean SCF cycles")
        ax.set_title(title)
    fig.suptitle(f"SCF cycles to conv_tol 1e-9: {model_name}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
