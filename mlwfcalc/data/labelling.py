"""Label geometries with PySCF: restricted Kohn-Sham (energy, forces, Kohn-Sham matrix F, dipole), or a
correlated method (energy, forces, relaxed dipole; :mod:`mlwfcalc.data.correlated`).

The PySCF runs are Dask tasks (``dask.distributed``): a ``LocalCluster`` of worker processes on this
machine by default, or the workers of a cluster the user already runs (``scheduler="tcp://host:port"``;
each worker needs mlwfcalc and PySCF installed). Only this process writes to the database, one row
per finished geometry in its own transaction, so the database stays the single source of truth: a
killed run loses at most the geometries in flight and a restart labels exactly those that are missing;
a worker that dies has its geometries rescheduled on the others by Dask, and a geometry that kills
workers again and again is recorded as failed with that reason.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from ase import Atoms
from ase.io import read
from ase.io.formats import parse_filename
from ase.units import Bohr
from tqdm.auto import tqdm

from ..basis import BasisLayout
from ..theory import LevelOfTheory
from ..validation import InputError, check_closed_shell, check_not_periodic, check_positions
from .correlated import NotConverged, correlated_labels
from .database import LabelDatabase
from .molecules import smiles_of
from .records import Frame, LabelResult


@dataclass
class LabelSummary:
    done: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = (f"labelled {self.done}, failed {self.failed}, already in the database {self.skipped}, "
                f"time {self.seconds:.1f} s")
        return "\n".join([text] + [f"  failed: {f}" for f in self.failures])


def read_images(paths: Sequence[str | Path]) -> list[tuple[str, int, Atoms]]:
    """``(source, index, Atoms)`` for every frame of xyz/extxyz files (any ASE-readable format), ``info``
    kept; InputError if unreadable. ASE's ``path@slice`` selects frames: ``traj.xyz@:400`` reads the first 400.
    """
    out = []
    for path in paths:
        try:
            name, index = parse_filename(str(path))
            images = read(name, index=":" if index is None else index)
            images = images if isinstance(images, list) else [images]
        except Exception as err:
            raise InputError(f"cannot read {path} ({type(err).__name__}: {err}); give an xyz or extxyz file, "
                             "optionally with an ASE slice such as traj.xyz@:400") from None
        if not images:
            raise InputError(f"{path} holds no geometry")
        out.extend((str(path), index, atoms) for index, atoms in enumerate(images))
    return out


def read_frames(paths: Sequence[str | Path]) -> list[Frame]:
    """Every frame of xyz/extxyz files as :class:`Frame` objects (see :func:`read_images`)."""
    return [frame_of(atoms, source, index) for source, index, atoms in read_images(paths)]


def frame_of(atoms: Atoms, source: str, index: int) -> Frame:
    """A Frame from an ASE Atoms; charge, spin (2S) and the molecule's SMILES come from ``atoms.info``
    when present (``mlwfcalc molecules`` and ``sample --every-frame`` write ``smiles``)."""
    return Frame(source=source, index=index, numbers=atoms.numbers.copy(), positions=atoms.positions.copy(),
                 charge=int(atoms.info.get("charge", 0)), spin=int(atoms.info.get("spin", 0)),
                 pbc=tuple(bool(p) for p in atoms.pbc), molecule=smiles_of(atoms))


def validate_frames(frames: Iterable[Frame], basis: str) -> None:
    """Check every frame before any work starts, so that bad input writes no row at all.

    Order: periodicity, coordinates, basis coverage of the elements, closed shell.
    """
    for frame in frames:
        check_not_periodic(frame.pbc, where=frame.where)
        check_positions(frame.positions, where=frame.where)
        try:
            BasisLayout(basis, frame.numbers)
        except InputError as err:
            raise InputError(f"{frame.where}: {err}") from None
        check_closed_shell(frame.numbers, frame.charge, frame.spin, where=frame.where)


def label_frame(frame: Frame, settings: LevelOfTheory, guess: str | None = None, forces: bool = True) -> LabelResult:
    """Run the SCF (or correlated method) and its nuclear gradient on one frame. Never raises: failures
    come back with a reason.

    ``forces=False`` (Kohn-Sham only) skips the nuclear gradient: F, energy and dipole, for training frames
    whose forces no loss needs, at about half the cost of a PBE/def2-SVP label.

    ``guess``: a model (shipped name or directory) whose density starts the Kohn-Sham SCF: the same
    converged labels in fewer cycles. A frame that the model cannot take (outside its training domain,
    another element) starts from PySCF's minao guess, as without ``guess``; the result says which.
    """
    start = time.perf_counter()
    try:
        layout = BasisLayout(settings.basis, frame.numbers)
        mol = layout.make_mole(frame.numbers, frame.positions / Bohr)
        if settings.correlated:
            try:
                energy, forces, dipole, cycles = correlated_labels(mol, settings)
            except NotConverged as err:
                return LabelResult(frame, False, 0, time.perf_counter() - start, reason=str(err))
            return LabelResult(frame, True, cycles, time.perf_counter() - start, energy=energy, forces=forces,
                               dipole=dipole)
        mf = settings.make_scf(mol)
        dm0, started = _model_guess(mf, guess) if guess else (None, "minao")
        energy = mf.kernel(dm0=dm0)
        cycles = int(getattr(mf, "cycles", -1))
        if not mf.converged:
            return LabelResult(frame, False, cycles, time.perf_counter() - start,
                               reason=f"SCF not converged within max_cycle={settings.max_cycle} (conv_tol "
                                      f"{settings.conv_tol:g}) from the {started} guess", guess=started)
        fock = mf.get_fock()
        gradient = settings.nuclear_gradient(mf) if forces else None
        dipole = mf.dip_moment(unit="AU", verbose=0)
        return LabelResult(frame, True, cycles, time.perf_counter() - start, energy=float(energy),
                           forces=None if gradient is None else -np.asarray(gradient), fock=np.asarray(fock),
                           dipole=np.asarray(dipole), guess=started)
    except Exception as err:  # recorded as a failed row, never used for training
        return LabelResult(frame, False, 0, time.perf_counter() - start, reason=f"{type(err).__name__}: {err}")


def _model_guess(mf, model: str):
    """``(density, "model NAME")`` of ``model`` for ``mf``'s molecule, or ``(None, "minao")`` when the model
    cannot take it (another element, charge or spin, or outside its training domain)."""
    import warnings

    from ..pyscf import guess_dm, resolve_model

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a spurious-orbital warning: the SCF corrects any guess
            return guess_dm(mf, resolve_model(model, "cpu"), domain="refuse"), f"model {model}"
    except InputError:  # OutOfDomainError is an InputError
        return None, "minao"


def _label_with_threads(frame: Frame, settings: LevelOfTheory, threads: int, guess: str | None = None,
                        forces: bool = True) -> LabelResult:
    """:func:`label_frame` with PySCF's (and, for a model guess, torch's) threads set first (the Dask task)."""
    from pyscf import lib

    lib.num_threads(threads)
    if guess:
        import torch

        torch.set_num_threads(threads)
    return label_frame(frame, settings, guess, forces)


def _check_guess_model(guess: str, settings: LevelOfTheory) -> None:
    """Load the guess model once here, so that a wrong name or level of theory fails before any work."""
    from ..pyscf import resolve_model

    if settings.correlated:
        raise InputError(f"--guess starts Kohn-Sham SCFs; {settings.method} labels run on a Hartree-Fock "
                         "reference: drop --guess")
    model = resolve_model(guess, "cpu")
    if (model.theory.xc, model.theory.basis) != (settings.xc, settings.basis):
        raise InputError(f"the guess model {guess} predicts {model.theory.name} but the labels are "
                         f"{settings.name}: give a model of the labels' functional and basis")


#: Times Dask retries a geometry whose worker died before it records the geometry as failed.
ALLOWED_WORKER_DEATHS = 3


def label_frames(frames: Sequence[Frame], database: str | Path, settings: LevelOfTheory | None = None, *,
                 workers: int | None = None, threads_per_worker: int = 1, progress: bool = True,
                 scheduler: str | None = None, guess: str | None = None, forces: bool = True) -> LabelSummary:
    """Label ``frames`` into the ASE database ``database``, resuming where an earlier run stopped.

    Geometries already in the database (same geometry key, done or failed) are skipped; duplicate
    geometries within ``frames`` are labelled once.

    Args:
        frames: geometries, for example from :func:`read_frames`.
        database: path of an ASE SQLite database (created if missing).
        settings: PySCF settings; a database labelled with other settings is refused.
        workers: worker processes of the local cluster (default: CPU count // threads_per_worker);
            ignored with ``scheduler``.
        threads_per_worker: PySCF OpenMP threads per geometry.
        scheduler: address of a running Dask scheduler (``tcp://host:port``); default: a
            ``LocalCluster`` started and stopped here.
        guess: a Kohn-Sham model (shipped name or directory) whose density starts each SCF (see
            :func:`label_frame`); refused for correlated methods and for a model at another level of theory.
        forces: ``False`` labels Kohn-Sham frames without the nuclear gradient (F, energy, dipole; rows say
            ``forces_labelled=False``); refused for correlated methods, whose labels are energies and forces.
    """
    settings = settings or LevelOfTheory()
    if not forces and settings.correlated:
        raise InputError(f"{settings.method} labels are energies and forces (no F): drop --no-forces")
    validate_frames(frames, settings.basis)
    if guess:
        _check_guess_model(guess, settings)
        guess = str(Path(guess).resolve()) if Path(guess).is_dir() else guess  # for workers elsewhere
    start = time.perf_counter()
    db = LabelDatabase(database, settings)
    summary = LabelSummary()
    todo, seen = [], db.keys()
    for frame in frames:
        if frame.key in seen:
            summary.skipped += 1
            continue
        seen.add(frame.key)
        todo.append(frame)
    if todo:
        with _dask_client(scheduler, workers, threads_per_worker, len(todo)) as client:
            _label_on(client, todo, db, settings, threads_per_worker, summary, progress, guess, forces)
    summary.seconds = time.perf_counter() - start
    return summary


def _dask_client(scheduler: str | None, workers: int | None, threads_per_worker: int, tasks: int):
    """A Dask client: of the scheduler at ``scheduler``, or of a new local cluster (closed with the client)."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="10s")
        except OSError as err:
            raise InputError(f"cannot reach the Dask scheduler at {scheduler} ({err}); start one with "
                             "`dask scheduler` and workers with `dask worker ADDRESS`, or drop --scheduler "
                             "to label on this machine") from None
    n = max(1, min(tasks, workers or (os.cpu_count() or 1) // max(1, threads_per_worker)))
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_WORKER_DEATHS - 1}):  # read at start
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",  # free port
                               silence_logs=40)  # logging.ERROR
    return Client(cluster, set_as_default=False)


def _label_on(client, todo: list[Frame], db: LabelDatabase, settings: LevelOfTheory, threads: int,
              summary: LabelSummary, progress: bool, guess: str | None = None, forces: bool = True) -> None:
    """Submit every frame, write each result as it arrives (this process alone writes)."""
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    futures = {client.submit(_label_with_threads, frame, settings, threads, guess, forces, pure=False): frame
               for frame in todo}
    with tqdm(total=len(todo), desc="labelling", unit="geom", disable=not progress) as bar:
        for future in as_completed(futures, loop=client.loop):
            frame = futures[future]
            try:
                result = future.result()
            except KilledWorker:
                result = LabelResult(frame, False, reason=f"the worker running it died {ALLOWED_WORKER_DEATHS} "
                                                          "times (out of memory, or a crash in PySCF)")
            db.write(result)
            if result.converged:
                summary.done += 1
            else:
                summary.failed += 1
                summary.failures.append(f"{result.frame.where}: {result.reason}")
            bar.update()
