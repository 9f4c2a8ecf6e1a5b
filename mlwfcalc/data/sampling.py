"""Cheap geometry sampling: GFN2-xTB Langevin MD through tblite's ASE calculator.

This mirrors how MD17 was made (ab initio MD at 500 K) at a small fraction of the cost; the
frames are then labelled with PySCF by :mod:`mlwfcalc.data.labelling`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.build import molecule
from ase.collections import g2
from ase.constraints import FixCom
from ase.io import read, write
from ase.md.langevin import Langevin
from ase.md import velocitydistribution
from ase.md.velocitydistribution import Stationary, ZeroRotation
from tqdm.auto import tqdm

from ..validation import InputError, check_not_periodic, check_positions


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
        raise InputError("sampling needs tblite: pip install 'mlwfcalc[sample]'") from None
    return TBLite(method="GFN2-xTB", verbosity=0)


def thermalize(atoms: Atoms, temperature_K: float, rng: np.random.Generator) -> None:
    """Maxwell-Boltzmann momenta at ``temperature_K``, then no net translation or rotation."""
    # ASE >= 3.29 names it thermalize_momenta; older releases MaxwellBoltzmannDistribution
    draw = getattr(velocitydistribution, "thermalize_momenta", None) or \
        velocitydistribution.MaxwellBoltzmannDistribution
    draw(atoms, temperature_K=temperature_K, rng=rng)
    Stationary(atoms)
    ZeroRotation(atoms)


def sample_md(start: Atoms, output: str | Path, *, temperature_K: float = 500.0, n_frames: int = 100,
              interval: int = 10, timestep_fs: float = 0.5, equilibration: int = 200, friction_per_fs: float = 0.01,
              seed: int = 0, overwrite: bool = False, progress: bool = True) -> list[Atoms]:
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
            frame = Atoms(atoms.numbers, positions=atoms.positions)
            frame.info.update(md_step=int(dyn.nsteps), temperature_K=float(atoms.get_temperature()),
                              xtb_energy=float(atoms.get_potential_energy()))
            check_positions(frame.positions, where=f"MD step {dyn.nsteps}")
            write(handle, frame, format="extxyz")
            handle.flush()
            frames.append(frame)
    return frames
