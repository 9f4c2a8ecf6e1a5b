"""A chemical-space model on held-out molecules against their PySCF labels, beside GFN2-xTB (issue 19).

    python benchmarks/chemical_space.py --model organic-pbe-def2svp --test work/organic/organic-test.db \
        [--timing 10] [--threads 2]

Every labelled geometry of ``--test`` (molecules never trained on) is randomly rotated with its
references, then:

* the model (its energy head, autograd forces, the dipole, HOMO-LUMO gap and occupied orbital
  energies of its predicted F) and GFN2-xTB (tblite; energy, forces, its point-charge dipole) are
  compared with the PySCF labels. Energies per atom: the model's raw; xTB's after removing one
  reference energy per element, fitted by least squares on this very set (xTB's total energies are on
  another scale), which flatters xTB. Geometries outside the model's domain are counted, not scored;
* time per energy+forces call for the first ``--timing`` molecules: the model's calculator, xTB,
  and PySCF (SCF from minao, then the analytic gradient), medians in one run.

Last, molecules outside the domain (an element never seen, a size never seen: ``OUTSIDE``, embedded
with RDKit) must each be refused with :class:`OutOfDomainError`; the table says which were.

The SCF warm start (cycles and wall time against minao, sap and huckel) is
``benchmarks/scf_warm_start.py --frames TEST.xyz --md-steps 0``; error tables per molecule size and
functional group are ``mlwfcalc evaluate MODEL TEST.db --group-by size|family``. Prints Markdown.
"""

import argparse
import statistics
import time
import warnings

import numpy as np
import torch
from ase import Atoms
from ase.units import Bohr, Debye, Hartree
from pyscf import lib
from scipy.spatial.transform import Rotation

from mlwfcalc import MLWFCalculator
from mlwfcalc.data import LabelledDataset
from mlwfcalc.domain import OutOfDomainError, OutOfDomainWarning
from mlwfcalc.electronic import dipole_moment, solve_orbitals
from mlwfcalc.predictor import load_model
from mlwfcalc.pyscf import reference_scf


#: Probes outside a CHNOF model of up to 9 heavy atoms: unseen elements (S, Cl, P, Br), unseen sizes.
OUTSIDE = {"thiophene": "c1ccsc1", "chlorobenzene": "Clc1ccccc1", "methanethiol": "CS",
           "trimethylphosphine": "CP(C)C", "bromomethane": "CBr", "naphthalene": "c1ccc2ccccc2c1",
           "decane": "CCCCCCCCCC", "caffeine": "Cn1cnc2c1c(=O)n(C)c(=O)n2C", "hydrogen": "[H][H]"}


def rotated(dataset: LabelledDataset, seed: int) -> list[dict]:
    """Per sample: ASE atoms (A) and references (eV, eV/A, e*A, Hartree orbital energies), randomly rotated."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in dataset.samples:
        rotation = Rotation.random(random_state=rng).as_matrix()
        atoms = Atoms(s.numbers.numpy(), positions=s.positions.numpy() @ rotation.T * Bohr)
        rows.append({"atoms": atoms, "energy": float(s.energy) * Hartree, "fock": s.fock,
                     "forces": s.forces.numpy() @ rotation.T * Hartree / Bohr,
                     "dipole": s.dipole.numpy() @ rotation.T * Bohr, "molecule": s.molecule})
    return rows


def inside(model, atoms: Atoms) -> bool:
    """Whether the model answers for ``atoms`` without a domain warning (an unknown element is outside too)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OutOfDomainWarning)
            return not model.check_atoms(atoms, domain="warn")
    except OutOfDomainError:
        return False


def score_model(model, rows) -> dict:
    energy, forces, dipole, gap, occupied, outside = [], [], [], [], [], 0
    for row in rows:
        atoms = row["atoms"]
        if not inside(model, atoms):
            outside += 1
            continue
        (p,) = model.predict([atoms], forces=True, domain="warn")
        n = len(atoms)
        energy.append(abs(p.energy * Hartree - row["energy"]) / n)
        forces.append(np.abs(p.forces * Hartree / Bohr - row["forces"]).ravel())
        dipole.append(np.linalg.norm(dipole_moment(p.mol, torch.as_tensor(p.density_matrix)).numpy() * Bohr
                                     - row["dipole"]) / Debye)
        n_occ = int((p.mo_occ > 0).sum())
        stored = row["reference_orbitals"]
        occupied.append(np.abs(p.mo_energy[:n_occ] - stored[:n_occ]).mean())
        gap.append(abs((p.mo_energy[n_occ] - p.mo_energy[n_occ - 1]) - (stored[n_occ] - stored[n_occ - 1])))
    return {"scored": len(energy), "outside": outside, "energy_mev_per_atom": 1000 * np.mean(energy),
            "forces_mev_per_a": 1000 * np.concatenate(forces).mean(), "dipole_debye": np.mean(dipole),
            "gap_mev": 1000 * Hartree * np.mean(gap), "occupied_uha": 1e6 * np.mean(occupied)}


def score_xtb(rows) -> dict:
    from tblite.ase import TBLite

    results = []
    for row in rows:
        atoms = row["atoms"].copy()
        atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
        results.append((atoms.get_potential_energy(), atoms.get_forces(), atoms.get_dipole_moment()))
    elements = sorted({int(z) for row in rows for z in row["atoms"].numbers})
    counts = np.array([[np.sum(row["atoms"].numbers == z) for z in elements] for row in rows], dtype=float)
    difference = np.array([r[0] - row["energy"] for r, row in zip(results, rows)])
    offsets, *_ = np.linalg.lstsq(counts, difference, rcond=None)  # one reference energy per element
    sizes = np.array([len(row["atoms"]) for row in rows])
    return {"scored": len(rows), "outside": 0,
            "energy_mev_per_atom": 1000 * np.mean(np.abs(difference - counts @ offsets) / sizes),
            "forces_mev_per_a": 1000 * np.concatenate([np.abs(r[1] - row["forces"]).ravel()
                                                       for r, row in zip(results, rows)]).mean(),
            "dipole_debye": np.mean([np.linalg.norm(r[2] - row["dipole"]) / Debye for r, row in zip(results, rows)]),
            "gap_mev": None, "occupied_uha": None}


def timings(model, rows, repeats: int = 3) -> dict[str, float]:
    """Median seconds per energy+forces call over the molecules: model, xTB, PySCF (minao SCF + gradient)."""
    from tblite.ase import TBLite

    out = {"mlwfcalc": [], "GFN2-xTB": [], "PySCF": []}
    for row in rows:
        for name in ("mlwfcalc", "GFN2-xTB"):
            atoms = row["atoms"].copy()
            atoms.calc = MLWFCalculator(model, domain="warn") if name == "mlwfcalc" else TBLite(method="GFN2-xTB",
                                                                                                verbosity=0)
            atoms.get_forces()  # warm-up
            seconds = []
            for k in range(repeats):
                atoms.positions[0, 0] += 1e-3
                start = time.perf_counter()
                atoms.get_forces()
                seconds.append(time.perf_counter() - start)
            out[name].append(statistics.median(seconds))
        mol = model.make_mole(row["atoms"])
        start = time.perf_counter()
        mf = reference_scf(model, mol, conv_tol=1e-9)
        mf.kernel()
        mf.nuc_grad_method().set(verbose=0).kernel()
        out["PySCF"].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in out.items()}


def probe_outside(model) -> list[tuple[str, str, str]]:
    """``(name, formula, first line of the refusal or "ANSWERED")`` for each :data:`OUTSIDE` molecule."""
    from mlwfcalc.data.molecules import Molecule, conformer

    out = []
    for name, smiles in OUTSIDE.items():
        atoms = conformer(Molecule(smiles, 0, ""), seed=0)
        try:
            model.predict([atoms])
            out.append((name, atoms.get_chemical_formula(), "ANSWERED"))
        except OutOfDomainError as err:
            out.append((name, atoms.get_chemical_formula(), str(err).split(": ", 1)[-1].split(". ")[0]))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--test", required=True, help="label database of held-out molecules")
    parser.add_argument("--timing", type=int, default=10, help="molecules timed (0: skip)")
    parser.add_argument("--seed", type=int, default=0, help="rotation seed")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lib.num_threads(args.threads)
    model = load_model(args.model, device="cpu")
    dataset = LabelledDataset(args.test)
    if model.model.energy_level != dataset.settings.name:
        parser.error(f"{args.model}'s energies are {model.model.energy_level}, {args.test} holds {dataset.settings.name}")
    rows = rotated(dataset, args.seed)
    for row, sample in zip(rows, dataset.samples):  # orbital energies do not depend on the orientation
        mol = model.make_mole(Atoms(sample.numbers.numpy(), positions=sample.positions.numpy() * Bohr))
        row["reference_orbitals"] = solve_orbitals(sample.fock, torch.as_tensor(mol.intor("int1e_ovlp")),
                                                   mol.nelectron).energies.numpy()
    molecules = len({row["molecule"] or k for k, row in enumerate(rows)})
    print(f"{args.test}: {len(rows)} geometries of {molecules} molecules, randomly rotated (seed {args.seed}); "
          f"model {args.model}\n")
    print("| method | scored (outside the domain) | energy MAE (meV/atom) | force MAE (meV/A) | dipole error (D) | "
          "gap MAE (meV) | occupied orbital energies MAE (micro-Hartree) |")
    print("|---|---|---|---|---|---|---|")
    scored = [row for row in rows if inside(model, row["atoms"])]  # xTB on the same geometries as the model
    if not scored:
        parser.error(f"no geometry of {args.test} lies inside the domain of {args.model}")
    for name, scores in ((f"{args.model}", score_model(model, rows)),
                         ("GFN2-xTB (per-element offsets fitted on this set)", score_xtb(scored))):
        cells = [f"{scores['scored']} ({scores['outside']})", f"{scores['energy_mev_per_atom']:.2f}",
                 f"{scores['forces_mev_per_a']:.1f}", f"{scores['dipole_debye']:.3f}",
                 "-" if scores["gap_mev"] is None else f"{scores['gap_mev']:.1f}",
                 "-" if scores["occupied_uha"] is None else f"{scores['occupied_uha']:.0f}"]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    probes = probe_outside(model)
    print(f"\nOutside the domain: {sum(r != 'ANSWERED' for *_, r in probes)} of {len(probes)} refused\n")
    print("| molecule | formula | refusal |\n|---|---|---|")
    for name, formula, reason in probes:
        print(f"| {name} | {formula} | {reason} |")
    if args.timing:
        timed = [row for row in rows if inside(model, row["atoms"])][:args.timing]
        times = timings(model, timed)
        print(f"\nTime per energy+forces call, median over {len(timed)} molecules ({args.threads} thread{'s' * (args.threads != 1)}): "
              + ", ".join(f"{name} {1000 * t:.1f} ms" for name, t in times.items()))


if __name__ == "__main__":
    main()
