"""Cheap geometry sampling with GFN2-xTB (tblite's ASE calculator): MD and normal-mode distortions.

:func:`sample_md` runs Langevin MD (as MD17 was made, ab initio MD at 500 K, at a small fraction of
the cost); :func:`sample_trajectories` runs several temperatures and seeds into one file;
:func:`sample_normal_modes` relaxes the molecule and draws classical harmonic (Boltzmann)
displacements along its normal modes, which reach the stretched bonds and bent angles MD rarely
visits. Frames are then selected (:mod:`mlwfcalc.data.selection`) and labelled with PySCF
(:mod:`mlwfcalc.data.labelling`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms, units
from ase.build import molecule
from ase.collections import g2
from ase.constraints import FixCom
from ase.data import covalent_radii
from ase.io import iread, read, write
from ase.md.langevin import Langevin
from ase.md import velocitydistribution
from ase.md.velocitydistribution import Stationary, ZeroRotation
from tqdm.auto import tqdm

from ..validation import InputError, check_not_periodic, check_positions
from .molecules import smiles_of

#: Normal modes softer than this (cm^-1; torsions, rotors) are displaced as if they had this frequency:
#: the harmonic picture would send them arbitrarily far.
SOFTEST_MODE_CM = 150.0
#: cm^-1 per sqrt(eV / (A^2 amu)): harmonic frequency from a mass-weighted Hessian eigenvalue.
CM_PER_SQRT_EV_A2_AMU = 521.47
#: A normal-mode frame with two atoms closer than this (Angstrom) is drawn again.
MIN_SAMPLED_DISTANCE = 0.6
#: With ``keep_bonds``, an MD frame is not written when a bond of the start (:func:`mlwfcalc.domain.covalent_bonds`)
#: is longer than ``MAX_BOND_STRETCH`` times its length there, or a pair that was not bonded has come closer
#: than ``NEW_BOND_FACTOR`` times the sum of its covalent radii (a formed bond; tighter than the bonding range,
#: which the cross-ring distances of four-membered rings reach in vibration): the molecule reacted or is coming apart.
MAX_BOND_STRETCH = 1.3
NEW_BOND_FACTOR = 1.15
#: With ``keep_bonds``, MD gives up after this many rejected frames in a row.
MAX_REJECTED_IN_A_ROW = 20


def load_start_structure(spec: str) -> Atoms:
    """The starting structure: the last frame of an xyz/extxyz file, or an ``ase.build.molecule`` name."""
    if os.path.exists(spec):
        try:
            atoms = read(spec, index=-1)
        except Exception as err:
            raise InputError(f"cannot read start structure {spec!r} ({type(err).__name__}: {err}); "
                             "give an xyz or extxyz file") from None
    elif spec in g2.names:
        atoms = molecule(spec)
    else:
        raise InputError(f"start structure {spec!r} is neither a file nor an ase.build.molecule name "
                         "(for example H2O, CH3CH2OH)")
    check_not_periodic(atoms.pbc, where=f"start structure {spec}")
    check_positions(atoms.positions, where=f"start structure {spec}")
    return atoms


def _xtb_calculator():
    try:
        from tblite.ase import TBLite
    except ImportError:  # pragma: no cover - depends on the installation
        raise InputError(f"mlwfcalc sample needs tblite: pip install 'mlwfcalc[sample]' (from a clone: "
                         f"pip install -e \".[sample]\")") from None
    return TBLite(method="GFN2-xTB", verbosity=0)


def thermalize(atoms: Atoms, temperature_K: float, rng: np.random.Generator) -> None:
    """Maxwell-Boltzmann momenta at ``temperature_K``, then no net translation or rotation."""
    # ASE >= 3.29 names it thermalize_momenta; older releases MaxwellBoltzmannDistribution
    draw = getattr(velocitydistribution, "thermalize_momenta", None) or \
        velocitydistribution.MaxwellBoltzmannDistribution
    draw(atoms, temperature_K=temperature_K, rng=rng)
    Stationary(atoms)
    with np.errstate(divide="ignore", invalid="ignore"):  # a linear molecule's zero moment is selected out by ASE
        ZeroRotation(atoms)


def sample_md(start: Atoms, output: str | Path, *, temperature_K: float = 500.0, n_frames: int = 100,
              interval: int = 10, timestep_fs: float = 0.5, equilibration: int = 200, friction_per_fs: float = 0.01,
              seed: int = 0, keep_bonds: bool = False, overwrite: bool = False,
              progress: bool = True) -> list[Atoms]:
    """Run GFN2-xTB Langevin MD and write every ``interval``-th step to ``output`` (extxyz).

    Args:
        start: starting structure (Angstrom); not modified.
        output: extxyz file; frames are appended and flushed one by one.
        temperature_K: thermostat temperature in K.
        n_frames: number of frames written.
        interval: MD steps between written frames.
        timestep_fs: MD time step in fs.
        equilibration: MD steps run before the first frame.
        friction_per_fs: Langevin friction in 1/fs.
        seed: seeds the initial velocities and the thermostat noise.
        keep_bonds: write only frames that keep the start's covalent bonds (:func:`bonds_kept`); the MD
            runs on past the others (a hot molecule that dissociated or transferred a proton is another
            molecule than the one its SMILES names), and gives up (:class:`BondsChangedError`) after
            ``MAX_REJECTED_IN_A_ROW`` rejected frames in a row.
        overwrite: replace an existing ``output`` instead of refusing.

    Returns:
        The written frames, each with ``info`` keys ``md_step``, ``temperature_K`` and ``xtb_energy`` (eV).
    """
    output = Path(output)
    if output.exists() and not overwrite:
        raise InputError(f"{output} exists; choose another file or pass --overwrite")
    if n_frames < 1 or interval < 1:
        raise InputError("n_frames and interval must be at least 1")
    atoms = start.copy()
    atoms.set_constraint(FixCom())
    atoms.calc = _xtb_calculator()
    rng = np.random.default_rng(seed)
    thermalize(atoms, temperature_K, rng)
    dyn = Langevin(atoms, timestep=timestep_fs * units.fs, temperature_K=temperature_K,
                   friction=friction_per_fs / units.fs, fixcm=False, rng=rng)
    if equilibration:
        dyn.run(equilibration)
    frames = []
    with open(output, "w") as handle:
        for _ in tqdm(range(n_frames), desc="sampling", unit="frame", disable=not progress):
            dyn.run(interval)
            rejected = 0
            while keep_bonds and not bonds_kept(start, atoms.positions):
                rejected += 1
                if rejected >= MAX_REJECTED_IN_A_ROW:
                    raise BondsChangedError(f"{start.get_chemical_formula()} ({smiles_of(start) or 'no SMILES'}) "
                                            f"lost or changed a covalent bond in {rejected} frames in a row of "
                                            f"GFN2-xTB MD at {temperature_K:g} K: sample it at a lower "
                                            "temperature, drop it, or allow reactions (keep_bonds=False, "
                                            "`sample --allow-reactions`)")
                dyn.run(interval)
            frame = Atoms(atoms.numbers, positions=atoms.positions)
            frame.info.update(md_step=int(dyn.nsteps), temperature_K=float(atoms.get_temperature()),
                              xtb_energy=float(atoms.get_potential_energy()))
            check_positions(frame.positions, where=f"MD step {dyn.nsteps}")
            write(handle, frame, format="extxyz")
            handle.flush()
            frames.append(frame)
    return frames


class BondsChangedError(InputError):
    """A molecule's GFN2-xTB relaxation or MD broke or made a covalent bond (:func:`bonds_kept`)."""


def bonds_kept(start: Atoms, positions: np.ndarray) -> bool:
    """Whether ``positions`` (``(n, 3)`` Angstrom, the atoms of ``start``) keep ``start``'s covalent bond
    graph (:func:`mlwfcalc.domain.covalent_bonds`): no bond of the start longer than ``MAX_BOND_STRETCH``
    times its length there, and no other pair closer than ``NEW_BOND_FACTOR`` times its covalent radii."""
    from ..domain import covalent_bonds, distance_matrix

    then, now = distance_matrix(start.positions), distance_matrix(positions)  # inf on the diagonals
    bonded = covalent_bonds(start.numbers, then)
    radii = covalent_radii[start.numbers]
    formed = ~bonded & (now < NEW_BOND_FACTOR * (radii[:, None] + radii[None]))
    return bool(np.all(now[bonded] <= MAX_BOND_STRETCH * then[bonded]) and not formed.any())


def sample_trajectories(start: Atoms | list[Atoms], output: str | Path, *, temperatures_K: list[float],
                        seeds: list[int], n_frames: int = 100, keep_bonds: bool = False, overwrite: bool = False,
                        progress: bool = True, **md) -> list[Atoms]:
    """:func:`sample_md` for every start structure, temperature and seed, all frames into one extxyz file.

    Each frame's ``info`` also holds ``target_temperature_K``, ``seed``, ``method="md"`` and, for a list
    of starts (several molecules, e.g. from ``mlwfcalc molecules``), ``start_index`` and the start's
    ``smiles``; each such start is relaxed with GFN2-xTB first. ``md`` passes on ``interval``,
    ``timestep_fs``, ``equilibration`` and ``friction_per_fs``.

    ``keep_bonds`` (with several starts): a molecule whose relaxation already changes the start's bond graph
    (:func:`bonds_kept`: a strained ring that opens, an unstable isomer that rearranges, so the SMILES no
    longer names it) or whose MD keeps reacting (:class:`BondsChangedError`) is left out with a warning,
    and within MD each frame is compared with the relaxed start (:func:`sample_md`).

    With several starts every finished molecule's frames (or, for one left out, a marker with the reason)
    are appended to ``OUTPUT.part`` at once, and a stopped run called again with the same arguments resumes
    after the last finished molecule (the frames are seeded, so the file is the one an uninterrupted run
    writes); ``overwrite`` starts afresh.
    """
    import warnings

    output = Path(output)
    if output.exists() and not overwrite:
        raise InputError(f"{output} exists; choose another file or pass --overwrite")
    if n_frames < 1 or not temperatures_K or not seeds:
        raise InputError("sampling needs at least one frame, one temperature and one seed")
    several = isinstance(start, list)
    starts = start if several else [start]
    part = output.with_name(output.name + ".part")  # the finished molecules of a run with several starts
    scratch = output.with_name(output.name + ".run")  # the MD run in progress
    if overwrite or not several:
        part.unlink(missing_ok=True)
    runs = [(float(t), int(seed)) for t in temperatures_K for seed in seeds]
    finished = _finished_molecules(part, starts, runs, n_frames, keep_bonds) if several else []
    for index in tqdm(range(len(finished), len(starts)), desc="molecules", unit="molecule", initial=len(finished),
                      total=len(starts), disable=not (progress and several)):
        first = relax(starts[index]) if several else starts[index]
        try:
            if several and keep_bonds and not bonds_kept(starts[index], first.positions):
                raise BondsChangedError(f"{smiles_of(starts[index])}: its GFN2-xTB relaxation broke or made a "
                                        "covalent bond (the relaxed structure is another molecule)")
            molecule_frames = []
            for temperature, seed in runs:
                run = sample_md(first, scratch, temperature_K=temperature, n_frames=n_frames, seed=seed,
                                keep_bonds=keep_bonds, overwrite=True, progress=progress and not several, **md)
                for frame in run:
                    frame.info.update(target_temperature_K=temperature, seed=seed, method="md")
                    if several:
                        frame.info.update(start_index=index, smiles=smiles_of(starts[index]))
                molecule_frames += run
        except BondsChangedError as error:
            if not several:
                raise
            warnings.warn(f"molecule {index} left out: {error}", UserWarning, stacklevel=2)
            marker = Atoms(first.numbers, positions=first.positions)
            marker.info.update(start_index=index, smiles=smiles_of(starts[index]), left_out=str(error),
                               runs=_runs_text(runs))
            molecule_frames = [marker]
        if several:
            write(part, molecule_frames, format="extxyz", append=True)
        finished.append(molecule_frames)
    scratch.unlink(missing_ok=True)
    frames = [frame for group in finished for frame in group if "left_out" not in frame.info]
    write(output, frames, format="extxyz")
    part.unlink(missing_ok=True)
    return frames


def _finished_molecules(part: Path, starts: list[Atoms], runs: list[tuple[float, int]], n_frames: int,
                        keep_bonds: bool) -> list[list[Atoms]]:
    """Per finished molecule, in order, the frames a stopped :func:`sample_trajectories` run left in
    ``part`` (or the one marker of a molecule left out); none if there is no such file. A molecule the
    kill cut short is dropped (it is sampled again); refuses a file that another list of molecules,
    temperatures, seeds or frame count wrote."""
    if not part.exists():
        return []
    advice = "resume with the same arguments, or pass --overwrite to start afresh"
    frames, cut = [], False
    try:
        for frame in iread(part, ":", format="extxyz"):
            frames.append(frame)
    except Exception:  # a frame cut short when the run was killed while appending: keep what precedes it
        cut = True
    groups: list[list[Atoms]] = []
    for frame in frames:
        index = int(frame.info.get("start_index", -1))
        if groups and int(groups[-1][0].info.get("start_index", -1)) == index:
            groups[-1].append(frame)
        else:
            groups.append([frame])
    expected_runs = [(t, seed) for t, seed in runs for _ in range(n_frames)]
    kept = []
    for k, group in enumerate(groups):
        ids = {(int(f.info.get("start_index", -1)), smiles_of(f), f.get_chemical_formula()) for f in group}
        if k >= len(starts) or ids != {(k, smiles_of(starts[k]), starts[k].get_chemical_formula())}:
            raise InputError(f"{part} holds frames of another sampling run (other molecules): {advice}")
        if len(group) == 1 and "left_out" in group[0].info:
            if not keep_bonds or group[0].info.get("runs") != _runs_text(runs):
                raise InputError(f"{part} leaves molecule {k} out in a sampling run of other temperatures or "
                                 f"seeds, or one that kept bonds where this one allows reactions: {advice}")
            kept.append(group)
            continue
        found = [(float(f.info.get("target_temperature_K", -1)), int(f.info.get("seed", -1))) for f in group]
        if found == expected_runs:
            kept.append(group)
        elif k == len(groups) - 1 and found == expected_runs[:len(found)]:
            cut = True  # the last molecule, cut short by the kill
        else:
            raise InputError(f"{part} holds frames of another sampling run (other temperatures, seeds or frame "
                             f"counts): {advice}")
    if cut:  # rewrite what is whole, so the next molecules are appended to a readable file
        scratch = part.with_name(part.name + ".tmp")
        write(scratch, [frame for group in kept for frame in group], format="extxyz")
        os.replace(scratch, part)
    return kept


def _runs_text(runs: list[tuple[float, int]]) -> str:
    """The (temperature K, seed) runs of a sampling run as text, for the markers of molecules left out."""
    return ";".join(f"{t:g}K/{seed}" for t, seed in runs)


def relax(start: Atoms, fmax: float = 0.005) -> Atoms:
    """``start`` relaxed with GFN2-xTB (BFGS to ``fmax`` eV/A); a new Atoms without calculator."""
    from ase.optimize import BFGS

    atoms = Atoms(start.numbers, positions=start.positions)
    atoms.calc = _xtb_calculator()
    BFGS(atoms, logfile=None).run(fmax=fmax, steps=500)
    return Atoms(atoms.numbers, positions=atoms.positions)


def normal_modes(atoms: Atoms) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic frequencies ``(k,)`` (cm^-1) and Cartesian mode shapes ``(k, n, 3)`` (A per sqrt(amu)) of a
    relaxed molecule (GFN2-xTB finite-difference Hessian), without the translations and rotations."""
    import tempfile

    from ase.vibrations import Vibrations

    atoms = Atoms(atoms.numbers, positions=atoms.positions)
    atoms.calc = _xtb_calculator()
    with tempfile.TemporaryDirectory() as scratch:
        vibrations = Vibrations(atoms, name=os.path.join(scratch, "vib"), delta=0.005, nfree=2)
        vibrations.run()
        hessian = vibrations.get_vibrations().get_hessian_2d()  # eV/A^2
    inverse_sqrt_mass = np.repeat(1 / np.sqrt(atoms.get_masses()), 3)
    eigenvalues, vectors = np.linalg.eigh(hessian * np.outer(inverse_sqrt_mass, inverse_sqrt_mass))
    n_rigid = 5 if len(atoms) == 2 or _is_linear(atoms) else 6
    keep = np.argsort(np.abs(eigenvalues))[n_rigid:]
    frequencies = CM_PER_SQRT_EV_A2_AMU * np.sqrt(np.abs(eigenvalues[keep]))
    shapes = (vectors[:, keep] * inverse_sqrt_mass[:, None]).T.reshape(len(keep), len(atoms), 3)
    return frequencies, shapes


def _is_linear(atoms: Atoms) -> bool:
    centred = atoms.positions - atoms.positions.mean(axis=0)
    return np.linalg.svd(centred, compute_uv=False)[1] < 1e-3 if len(atoms) > 2 else True


def sample_normal_modes(start: Atoms, output: str | Path, *, temperatures_K: list[float], n_frames: int = 100,
                        seed: int = 0, overwrite: bool = False, progress: bool = True) -> list[Atoms]:
    """Classical harmonic (Boltzmann) distortions along the normal modes of the GFN2-xTB minimum.

    Each mode i gets an amplitude ``q_i ~ N(0, kT / omega_i^2)`` in mass-weighted coordinates (modes
    softer than ``SOFTEST_MODE_CM`` as if they had that frequency); the temperatures are used in turn.
    Unlike MD, every frame is independent and the high temperatures reach stretched bonds and bent
    angles directly. Frames with two atoms closer than ``MIN_SAMPLED_DISTANCE`` are drawn again.

    Returns:
        The written frames, each with ``info`` keys ``target_temperature_K``, ``seed`` and
        ``method="normal-modes"``.
    """
    output = Path(output)
    if output.exists() and not overwrite:
        raise InputError(f"{output} exists; choose another file or pass --overwrite")
    if n_frames < 1 or not temperatures_K:
        raise InputError("give at least one frame and one temperature")
    minimum = relax(start)
    frequencies, shapes = normal_modes(minimum)
    omega2 = (np.maximum(frequencies, SOFTEST_MODE_CM) / CM_PER_SQRT_EV_A2_AMU) ** 2  # eV/(A^2 amu)
    rng = np.random.default_rng(seed)
    frames = []
    for k in tqdm(range(n_frames), desc="normal-mode sampling", unit="frame", disable=not progress):
        temperature = float(temperatures_K[k % len(temperatures_K)])
        while True:
            amplitudes = rng.normal(0.0, np.sqrt(units.kB * temperature / omega2))
            positions = minimum.positions + np.einsum("i,inx->nx", amplitudes, shapes)
            distances = np.linalg.norm(positions[:, None] - positions[None], axis=-1)[np.triu_indices(len(positions), 1)]
            if len(distances) == 0 or distances.min() >= MIN_SAMPLED_DISTANCE:
                break
        frame = Atoms(minimum.numbers, positions=positions)
        frame.info.update(target_temperature_K=temperature, seed=int(seed), method="normal-modes", index=k)
        frames.append(frame)
    write(output, frames, format="extxyz")
    return frames


def best_orthogonal_fit(mobile: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``mobile`` ``(n, 3)`` moved onto ``target`` ``(n, 3)`` (Angstrom) by the translation and orthogonal map,
    proper rotation or rotation-reflection, of least squared deviation (Kabsch, both handednesses)."""
    mobile_c, target_c = mobile - mobile.mean(0), target - target.mean(0)
    u, _, vt = np.linalg.svd(mobile_c.T @ target_c)
    maps = [u @ vt, u @ np.diag([1.0, 1.0, -1.0]) @ vt]  # the optimal map of each determinant sign
    moved = [mobile_c @ m + target.mean(0) for m in maps]
    return min(moved, key=lambda x: float(np.sum((x - target) ** 2)))


def sample_tautomer_path(frames: Sequence[Atoms], output: str | Path, *, mapping: Sequence[int], n_frames: int = 100,
                         min_fraction: float = 0.1, seed: int = 0, overwrite: bool = False) -> list[Atoms]:
    """Frames along a degenerate rearrangement, such as malondialdehyde's O-H...O proton transfer.

    MD rarely crosses a low barrier that the reference method has and the sampler's method does not,
    so a model trained on MD alone leaves its domain when its own MD crosses it. When the rearrangement
    leads to the same molecule with its atoms relabelled (``mapping``: atom i of the product is atom
    ``mapping[i]`` of the reactant; malondialdehyde O C C C O H H H H: 4,3,2,1,0,5,8,7,6), each thermal
    frame X is relabelled, fitted onto X (:func:`best_orthogonal_fit`: the energy is invariant under
    both handednesses), and interpolated, ``X + f (X' - X)``, with ``f`` uniform in
    ``[min_fraction, 0.5]``: ``f = 0.5`` is a thermal copy of the symmetric transition structure, and
    ``f > 0.5`` repeats ``f < 0.5`` up to the relabelling.

    Args:
        frames: thermal frames of the molecule (MD or normal modes), Angstrom; ``n_frames`` of them are
            drawn without replacement.

    Returns:
        The written frames, each with ``info`` keys ``method="tautomer-path"``, ``path_fraction``,
        ``source_frame`` and, when the source had them, ``target_temperature_K`` and ``seed``.
    """
    output = Path(output)
    if output.exists() and not overwrite:
        raise InputError(f"{output} exists; choose another file or pass --overwrite")
    if not frames:
        raise InputError("no frames to start the tautomer path from")
    numbers = frames[0].numbers
    mapping = np.asarray(mapping, dtype=int)
    if sorted(mapping.tolist()) != list(range(len(numbers))) or not np.array_equal(numbers[mapping], numbers):
        raise InputError(f"--mapping must be a permutation of 0..{len(numbers) - 1} that sends every atom to one of "
                         f"the same element; got {mapping.tolist()} for {frames[0].get_chemical_formula()}")
    if np.array_equal(mapping, np.arange(len(numbers))):
        raise InputError("--mapping is the identity: it describes no rearrangement")
    if not 0.0 <= min_fraction <= 0.5:
        raise InputError(f"the smallest path fraction must lie in [0, 0.5], got {min_fraction}")
    if any(not np.array_equal(f.numbers, numbers) for f in frames):
        raise InputError("the frames must all be the same molecule in the same atom order")
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(frames), size=min(n_frames, len(frames)), replace=False)
    out = []
    for k in picks:
        x = frames[k].positions
        other = best_orthogonal_fit(x[mapping], x)
        midpoint = 0.5 * (x + other)
        closest = np.linalg.norm(midpoint[:, None] - midpoint[None], axis=-1)[np.triu_indices(len(x), 1)].min()
        if closest < MIN_SAMPLED_DISTANCE:
            raise InputError(f"--mapping {mapping.tolist()} puts two atoms {closest:.2f} A apart halfway along the "
                             f"path from frame {k}: it does not relabel the molecule into its rearranged self "
                             "(check that it maps each atom onto its partner in the other tautomer)")
        fraction = float(rng.uniform(min_fraction, 0.5))
        frame = Atoms(numbers, positions=x + fraction * (other - x))
        frame.info.update({key: frames[k].info[key] for key in ("target_temperature_K", "seed")
                           if key in frames[k].info})
        frame.info.update(method="tautomer-path", path_fraction=fraction, source_frame=int(k))
        out.append(frame)
    write(output, out, format="extxyz")
    return out
