"""Label archives: a label database packed into compact, immutable safetensors files that can be committed,
shared and unpacked again.

Labels are the expensive part of a model (tens of seconds of PySCF per geometry) and the SQLite database
that ``mlwfcalc label`` writes is large (the full float64 F of every row). An archive directory holds
numbered parts, ``part-000.safetensors``, ``part-001.safetensors``, ...: packing writes one new part with
only the rows that no earlier part holds, so parts never change once written (friendly to git and to
checksums), and unpacking writes every archived row that a database lacks, after which ``mlwfcalc label``
resumes with the geometries still missing.

What a part holds (no pickle; tensors plus a JSON header under the metadata key ``"mlwfcalc"``):

- ``numbers`` ``(n_atoms_total,)`` uint8 and ``atom_offsets`` ``(n_rows + 1,)`` int64: row ``i``'s atoms are
  ``numbers[atom_offsets[i]:atom_offsets[i + 1]]``;
- ``positions`` ``(n_atoms_total, 3)`` float64, Angstrom, exactly as labelled (so geometry keys survive);
- ``energy`` ``(n_rows,)`` Hartree, ``forces`` ``(n_atoms_total, 3)`` Hartree/Bohr, ``dipole`` ``(n_rows, 3)``
  e*Bohr, all float64 (NaN on failed rows; forces NaN too on rows labelled without them, ``--no-forces``);
- ``fock_upper`` the upper triangles (row-major, diagonal included) of every converged Kohn-Sham row's F,
  concatenated, Hartree, float32 by default (rounding below 2e-6 Hartree for F elements up to 20 Hartree,
  about 1 % of the smallest F error a model reaches) or float64; ``fock_offsets`` ``(n_rows + 1,)`` int64
  (a failed or correlated row has an empty slice);
- the header: the level of theory, the program and PySCF versions that labelled, and per row its
  geometry key, source, frame index, status, failure reason, SCF cycles, SCF seconds, the molecule's
  SMILES, where its SCF started (``guess``: ``"minao"`` or ``"model NAME"``) and whether it has forces
  (``forces_labelled``; parts written before that column hold forces on every converged row).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np
from ase.units import Bohr, Hartree

from ..theory import SETTINGS_KEYS, LevelOfTheory
from ..validation import InputError
from .database import LabelDatabase, _current_key

#: Format version written into every part's header; unpacking refuses other versions.
ARCHIVE_FORMAT = 1
#: Part files of an archive directory, in order.
PART_PATTERN = re.compile(r"part-(\d{3,})\.safetensors")
FOCK_PRECISIONS = {"float32": np.float32, "float64": np.float64}


def archive_parts(directory: str | Path) -> list[Path]:
    """The part files of an archive directory, in order; ``[]`` when it has none (or does not exist)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    parts = [p for p in directory.iterdir() if PART_PATTERN.fullmatch(p.name)]
    return sorted(parts, key=lambda p: int(PART_PATTERN.fullmatch(p.name).group(1)))


def _read_header(path: Path) -> dict:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            header = json.loads((handle.metadata() or {})["mlwfcalc"])
    except Exception as err:
        raise InputError(f"cannot read label archive part {path} ({type(err).__name__}: {err}); give a "
                         "part-NNN.safetensors written by `mlwfcalc pack-labels`") from None
    if header.get("format") != ARCHIVE_FORMAT:
        raise InputError(f"{path} is label archive format {header.get('format')!r}; this mlwfcalc reads format "
                         f"{ARCHIVE_FORMAT}: unpack it with the mlwfcalc version that wrote it")
    return header


def archived_keys(directory: str | Path) -> set[str]:
    """Geometry keys of every row in every part of an archive directory."""
    return {key for part in archive_parts(directory) for key in _read_header(part)["rows"]["geometry_key"]}


def _archive_settings(directory: Path) -> LevelOfTheory | None:
    """The level of theory of every part of ``directory`` (None without parts); InputError if they differ."""
    settings = {LevelOfTheory.from_metadata(_read_header(part)["settings"]) for part in archive_parts(directory)}
    if len(settings) > 1:
        raise InputError(f"the parts of {directory} mix levels of theory ({', '.join(map(str, settings))}); "
                         "keep one level of theory per archive directory")
    return settings.pop() if settings else None


def pack_labels(database: str | Path, directory: str | Path, fock_precision: str = "float32") -> tuple[Path | None, int]:
    """Write the rows of ``database`` that no part of ``directory`` holds yet into a new part.

    Returns ``(path of the new part, rows written)``; ``(None, 0)`` when every row is archived already.
    A database labelled at other settings than the archive's is refused.
    """
    from safetensors.numpy import save_file

    if fock_precision not in FOCK_PRECISIONS:
        raise InputError(f"unknown F precision {fock_precision!r}; choose one of {', '.join(FOCK_PRECISIONS)}")
    database, directory = Path(database), Path(directory)
    if not database.exists():
        raise InputError(f"label database {database} does not exist")
    db = LabelDatabase(database)
    stored = _archive_settings(directory)
    if stored is not None and stored != db.settings:
        raise InputError(f"{database} was labelled at {db.settings} but the archive {directory} holds {stored}; "
                         "pack it into another directory")
    done = archived_keys(directory)
    rows = [row for status in ("ok", "failed") for row in db.rows(status)
            if _current_key(str(row.geometry_key)) not in done]
    if not rows:
        return None, 0
    dtype = FOCK_PRECISIONS[fock_precision]
    numbers, positions, forces, focks = [], [], [], []
    energy = np.full(len(rows), np.nan)
    dipole = np.full((len(rows), 3), np.nan)
    atom_offsets, fock_offsets = [0], [0]
    table = {k: [] for k in ("geometry_key", "source", "frame", "status", "reason", "cycles", "scf_seconds",
                             "smiles", "guess", "forces_labelled")}
    for i, row in enumerate(rows):
        n = len(row.numbers)
        numbers.append(row.numbers)
        positions.append(row.positions)
        ok = row.status == "ok"
        has_forces = ok and row.get("forces_labelled", True) and row.get("forces") is not None
        forces.append(row.forces / (Hartree / Bohr) if has_forces else np.full((n, 3), np.nan))
        if ok:
            energy[i] = row.energy / Hartree
            dipole[i] = row.data["dipole"]
        fock = row.data.get("fock") if ok else None
        if fock is not None:
            focks.append(np.asarray(fock)[np.triu_indices(len(fock))].astype(dtype))
        atom_offsets.append(atom_offsets[-1] + n)
        fock_offsets.append(fock_offsets[-1] + (0 if fock is None else len(focks[-1])))
        table["geometry_key"].append(_current_key(str(row.geometry_key)))
        table["source"].append(str(row.source))
        table["frame"].append(int(row.frame))
        table["status"].append(row.status)
        table["reason"].append(row.get("reason"))
        table["cycles"].append(int(row.get("cycles", 0)))
        table["scf_seconds"].append(float(row.get("scf_seconds", 0.0)))
        table["guess"].append(str(row.get("guess", "minao")))
        table["smiles"].append((row.data.get("smiles") or "") if ok else "")
        table["forces_labelled"].append(bool(has_forces))
    tensors = {
        "numbers": np.concatenate(numbers).astype(np.uint8),
        "atom_offsets": np.asarray(atom_offsets, dtype=np.int64),
        "positions": np.concatenate(positions).astype(np.float64),
        "energy": energy,
        "forces": np.concatenate(forces).astype(np.float64),
        "dipole": dipole,
        "fock_upper": np.concatenate(focks) if focks else np.zeros(0, dtype),
        "fock_offsets": np.asarray(fock_offsets, dtype=np.int64),
    }
    labelled_with = {k: db.metadata.get(k) for k in ("program", "version", "pyscf_version")}
    header = {"format": ARCHIVE_FORMAT, "settings": {k: getattr(db.settings, k) for k in SETTINGS_KEYS},
              "fock_precision": fock_precision, "packed_from": database.name, "labelled_with": labelled_with,
              "units": {"positions": "Angstrom", "energy": "Hartree", "forces": "Hartree/Bohr",
                        "dipole": "e*Bohr (origin 0)", "fock": "Hartree, PySCF spherical AO order"},
              "rows": table}
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / f"pack-{os.getpid()}.partial"  # a killed pack leaves no half-written part
    save_file(tensors, str(partial), metadata={"mlwfcalc": json.dumps(header)})
    try:
        while True:  # the next free number, taken exclusively: a concurrent pack gets the one after
            parts = archive_parts(directory)
            index = int(PART_PATTERN.fullmatch(parts[-1].name).group(1)) + 1 if parts else 0
            path = directory / f"part-{index:03d}.safetensors"
            try:
                os.link(partial, path)
                break
            except FileExistsError:
                continue
    finally:
        partial.unlink()
    return path, len(rows)


def read_part(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """Header and tensors of one part, checked for consistency (InputError naming the problem)."""
    from safetensors.numpy import load_file

    header = _read_header(path)
    try:
        tensors = load_file(str(path))
        table, rows = header["rows"], len(header["rows"]["geometry_key"])
        LevelOfTheory.from_metadata(header["settings"])
        for name in ("numbers", "atom_offsets", "positions", "energy", "forces", "dipole", "fock_upper",
                     "fock_offsets"):
            if name not in tensors:
                raise ValueError(f"no tensor {name!r}")
        atoms, focks = tensors["atom_offsets"], tensors["fock_offsets"]
        if any(len(column) != rows for column in table.values()):
            raise ValueError("its row table has columns of different lengths")
        if len(atoms) != rows + 1 or len(focks) != rows + 1 or np.any(np.diff(atoms) <= 0) or np.any(np.diff(focks) < 0):
            raise ValueError("its offsets do not match its rows")
        if atoms[-1] != len(tensors["numbers"]) or tensors["positions"].shape != (atoms[-1], 3) or \
                tensors["forces"].shape != (atoms[-1], 3) or focks[-1] != len(tensors["fock_upper"]) or \
                tensors["energy"].shape != (rows,) or tensors["dipole"].shape != (rows, 3):
            raise ValueError("its tensors do not match its offsets")
        for size in np.diff(focks):
            nao = int(round((np.sqrt(8 * size + 1) - 1) / 2))
            if nao * (nao + 1) // 2 != size:
                raise ValueError(f"an F triangle of {size} elements")
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"label archive part {path} is malformed ({type(err).__name__}: {err}); pack it again "
                         "from its database") from None
    return header, tensors


def _merged_settings(loaded: list, directories: Sequence[str | Path]) -> LevelOfTheory:
    """The one level of theory of the parts ``loaded`` (``(path, header, tensors)`` each). Parts that differ
    only in how forces are computed (``gradient``) merge when only one of those ways labelled any forces:
    the energy, F and dipole do not depend on it (e.g. SCF-only labels, ``--no-forces``, beside labels with
    exact forces); the database then records the way its forces were computed. Anything else: InputError."""
    settings = {LevelOfTheory.from_metadata(header["settings"]) for _, header, _ in loaded}
    if len(settings) == 1:
        return settings.pop()
    with_forces = {LevelOfTheory.from_metadata(header["settings"]) for _, header, _ in loaded
                   if any(header["rows"].get("forces_labelled", [True] * len(header["rows"]["status"])))}
    without_gradient = {replace(level, gradient="exact") for level in settings}
    if len(without_gradient) == 1 and len(with_forces) <= 1:
        return with_forces.pop() if with_forces else min(settings, key=str)
    raise InputError(f"the archives {', '.join(map(str, directories))} mix levels of theory "
                     f"({', '.join(map(str, settings))}); unpack each into its own database")


def unpack_labels(directories: Sequence[str | Path], database: str | Path) -> tuple[int, int]:
    """Write every archived row that ``database`` lacks (created if missing, at the archive's settings).

    Returns ``(rows written, rows already there)``. A malformed part, a row whose geometry key does not
    match its positions, or archives at several levels of theory are refused before the database is
    opened; a database at other settings than the archive's is refused before anything is written.
    """
    from .labelling import Frame, LabelResult

    parts = [part for directory in directories for part in archive_parts(directory)]
    if not parts:
        raise InputError(f"no part-NNN.safetensors in {', '.join(map(str, directories))}; pack a label database "
                         "with `mlwfcalc pack-labels DB -o DIRECTORY` first")
    loaded = [(part, *read_part(part)) for part in parts]
    settings = _merged_settings(loaded, directories)
    results = {}
    for part, header, t in loaded:
        table = header["rows"]
        for i, key in enumerate(table["geometry_key"]):
            a, b = t["atom_offsets"][i], t["atom_offsets"][i + 1]
            frame = Frame(source=table["source"][i], index=table["frame"][i], numbers=t["numbers"][a:b].astype(int),
                          positions=t["positions"][a:b], molecule=table["smiles"][i])
            if frame.key != key:
                raise InputError(f"{part}: row {i} has geometry key {key} but its positions hash to {frame.key}; "
                                 "the part is corrupt: pack it again from its database")
            if key in results:
                continue
            guess = table["guess"][i] if "guess" in table else "minao"  # parts before the guess column
            if table["status"][i] != "ok":
                results[key] = LabelResult(frame, False, table["cycles"][i], table["scf_seconds"][i],
                                           reason=table["reason"][i], guess=guess)
                continue
            fa, fb = t["fock_offsets"][i], t["fock_offsets"][i + 1]
            fock = None
            if fb > fa:
                nao = int(round((np.sqrt(8 * (fb - fa) + 1) - 1) / 2))
                fock = np.zeros((nao, nao))
                fock[np.triu_indices(nao)] = t["fock_upper"][fa:fb]
                fock = fock + np.triu(fock, 1).T
            has_forces = table["forces_labelled"][i] if "forces_labelled" in table else True
            results[key] = LabelResult(frame, True, table["cycles"][i], table["scf_seconds"][i],
                                       energy=float(t["energy"][i]), fock=fock,
                                       forces=t["forces"][a:b].copy() if has_forces else None,
                                       dipole=t["dipole"][i].copy(), guess=guess)
    db = LabelDatabase(database, settings)
    have = db.keys()
    todo = [result for key, result in results.items() if key not in have]
    for result in todo:
        db.write(result)
    return len(todo), len(results) - len(todo)
