"""The labelled set on disk: an ASE SQLite database (inspect it with ``ase db FILE``).

One row per geometry. Converged rows carry ASE's energy (eV) and forces (eV/A; absent from rows labelled
with ``--no-forces``, which say ``forces_labelled=False``) and, in
``row.data``, the Kohn-Sham matrix ``fock`` (Hartree, PySCF AO order; Kohn-Sham labels only) and
``dipole`` (e*Bohr).
Failed rows carry ``status="failed"`` and a ``reason`` and are never used for training.
The PySCF settings live in the database metadata; a database is only ever extended with the
settings it was made with.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.db import connect
from ase.units import Bohr, Hartree

from ..theory import LEGACY_DEFAULTS, SETTINGS_KEYS, LevelOfTheory
from ..validation import InputError
from .records import LabelResult, geometry_key  # noqa: F401 (geometry_key: importable from here as before)


def _current_key(stored: str) -> str:
    """A stored key in today's form: databases written before the ``"g"`` prefix hold 20 bare hex digits."""
    return stored if stored.startswith("g") else "g" + stored[:19]


class LabelDatabase:
    """Writer/reader for a labelled set. Creates the file, or checks its settings on reopening."""

    def __init__(self, path: str | Path, settings: LevelOfTheory | None = None):
        self.path = Path(path)
        exists = self.path.exists()
        try:
            self._db = connect(str(self.path), type="db", append=True)
            metadata = self._db.metadata if exists else {}
        except Exception as err:
            raise InputError(f"cannot open label database {self.path} ({type(err).__name__}: {err}); "
                             "give an ASE SQLite file written by `mlwfcalc label`") from None
        if exists and not all(k in metadata for k in SETTINGS_KEYS if k not in LEGACY_DEFAULTS):
            raise InputError(f"{self.path} is not an mlwfcalc label database (no labelling settings in its metadata)")
        if exists:
            stored = LevelOfTheory.from_metadata(metadata)
            if settings is not None and stored != settings:
                diff = {k: (getattr(stored, k), getattr(settings, k)) for k in SETTINGS_KEYS
                        if getattr(stored, k) != getattr(settings, k)}
                raise InputError(f"{self.path} was labelled with other settings ({', '.join(f'{k}: {a} there, {b} now' for k, (a, b) in diff.items())}); "
                                 "use the same settings or a new database file")
            self.settings = stored
        elif settings is None:
            raise InputError(f"label database {self.path} does not exist")
        else:
            import pyscf

            from .. import __version__
            metadata = {**asdict(settings), "program": "mlwfcalc", "version": __version__,
                        "pyscf_version": pyscf.__version__,
                        "units": {"energy": "eV", "forces": "eV/A", "positions": "A", "fock": "Hartree",
                                  "dipole": "e*Bohr"},
                        "ao_order": "pyscf-spherical"}
            if settings.correlated:
                from .correlated import FIELD_STEP

                metadata.update(correlated_electrons="all (no frozen core)",
                                dipole_from=f"finite field, central differences, step {FIELD_STEP} a.u.")
            self._db.metadata = metadata
            self.settings = settings

    @property
    def metadata(self) -> dict:
        """The database metadata: the settings, and the program and PySCF versions that labelled it."""
        return self._db.metadata

    def keys(self) -> set[str]:
        """Geometry keys of every row (done or failed)."""
        return {_current_key(str(row.geometry_key)) for row in self._db.select(columns=["key_value_pairs"])}

    def write(self, result: LabelResult) -> None:
        """Write one row in one transaction (atomic: a killed process leaves no partial row)."""
        frame = result.frame
        atoms = Atoms(frame.numbers, positions=frame.positions)
        info = dict(geometry_key=frame.key, source=frame.source, frame=frame.index,
                    cycles=result.cycles, scf_seconds=round(result.seconds, 3), guess=result.guess)
        if result.converged:
            labelled = {"energy": result.energy * Hartree}
            if result.forces is not None:
                labelled["forces"] = result.forces * Hartree / Bohr
            info["forces_labelled"] = result.forces is not None
            atoms.calc = SinglePointCalculator(atoms, **labelled)
            data = {"fock": result.fock, "dipole": result.dipole,
                    "smiles": frame.molecule or None}  # the molecule a molecule-disjoint split groups by
            self._db.write(atoms, status="ok", **info, data={k: v for k, v in data.items() if v is not None})
        else:
            self._db.write(atoms, status="failed", reason=result.reason, **info)

    def rows(self, status: str = "ok"):
        """Rows with the given status, in a deterministic order (source, then frame index)."""
        rows = list(self._db.select(status=status))
        return sorted(rows, key=lambda r: (r.source, r.frame, r.geometry_key))

    def count(self, status: str | None = None) -> int:
        return self._db.count(status=status) if status else self._db.count()
