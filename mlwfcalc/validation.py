"""Checks on user input that turn bad molecules into one clear error line.

Every check raises :class:`InputError` whose message names the problem and, where there is one,
the fix. ``where`` prefixes the message (for example ``"frame 3 of water.xyz"``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: Two atoms closer than this (Angstrom) are taken as overlapping, not as a molecule.
MIN_INTERATOMIC_DISTANCE = 0.1


class InputError(ValueError):
    """Input that mlwfcalc cannot use; the message says what is wrong and how to fix it."""


def _prefix(where: str | None) -> str:
    return f"{where}: " if where else ""


def check_positions(positions_ang: np.ndarray, where: str | None = None,
                    min_distance: float = MIN_INTERATOMIC_DISTANCE) -> None:
    """Refuse NaN/infinite coordinates and atoms closer than ``min_distance`` Angstrom.

    Args:
        positions_ang: ``(n_atoms, 3)`` Cartesian positions in Angstrom.
    """
    positions = np.asarray(positions_ang, dtype=float)
    if positions.ndim != 2 or positions.shape[1] != 3 or len(positions) == 0:
        raise InputError(f"{_prefix(where)}positions must have shape (n_atoms, 3), got {positions.shape}")
    bad = np.flatnonzero(~np.isfinite(positions).all(axis=1))
    if bad.size:
        raise InputError(f"{_prefix(where)}atom {bad[0]} has non-finite coordinates {positions[bad[0]].tolist()}; "
                         "fix the geometry")
    if len(positions) > 1:
        dist = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
        dist[np.diag_indices(len(positions))] = np.inf
        i, j = np.unravel_index(np.argmin(dist), dist.shape)
        if dist[i, j] < min_distance:
            raise InputError(f"{_prefix(where)}atoms {min(i, j)} and {max(i, j)} overlap ({dist[i, j]:.3f} A apart, "
                             f"less than {min_distance} A); fix the geometry or remove it")


def check_not_periodic(pbc: Sequence[bool], where: str | None = None) -> None:
    """Refuse periodic systems: mlwfcalc models are molecular (open boundaries)."""
    if np.any(pbc):
        raise InputError(f"{_prefix(where)}periodic boundary conditions (pbc={list(map(bool, pbc))}) are not "
                         "supported: mlwfcalc models isolated molecules; set atoms.pbc = False")


def check_closed_shell(numbers: Sequence[int], charge: int = 0, spin: int = 0, where: str | None = None,
                       allowed_charges: Sequence[int] = (0,)) -> None:
    """Refuse charges outside ``allowed_charges`` and anything but a closed shell (even electrons, spin 0).

    Args:
        numbers: atomic numbers.
        charge: total charge in e.
        spin: 2S, the number of unpaired electrons.
    """
    if charge not in allowed_charges:
        raise InputError(f"{_prefix(where)}total charge {charge} is not supported (supported: "
                         f"{', '.join(map(str, allowed_charges))}); label or model neutral molecules only")
    n_electrons = int(np.sum(numbers)) - int(charge)
    if spin != 0 or n_electrons % 2:
        raise InputError(f"{_prefix(where)}{n_electrons} electrons with spin 2S={spin} is not a closed shell; "
                         "only closed-shell molecules (even electron count, spin 0) are supported")


def check_state(numbers: Sequence[int], charge: int = 0, spin: int = 0, where: str | None = None) -> None:
    """Refuse a charge and spin (2S) that no electron count allows: ``N - spin`` odd or negative, or ``N < 1``."""
    n_electrons = int(np.sum(numbers)) - int(charge)
    if n_electrons < 1:
        raise InputError(f"{_prefix(where)}charge {charge} leaves {n_electrons} electrons; give a smaller charge")
    if spin < 0 or spin > n_electrons or (n_electrons - spin) % 2:
        fix = spin - 1 if spin > 0 else 1
        raise InputError(f"{_prefix(where)}charge {charge} and spin {spin} (2S) leave {n_electrons} electrons, which "
                         f"cannot have 2S = {spin}: give spin {fix} (command line: --spin {fix}), or another charge")


def check_elements(numbers: Sequence[int], supported: Sequence[int], where: str | None = None,
                   what: str = "the model") -> None:
    """Refuse atomic numbers outside ``supported``."""
    from ase.data import chemical_symbols

    unknown = sorted(set(int(z) for z in numbers) - set(int(z) for z in supported))
    if unknown:
        names = ", ".join(chemical_symbols[z] if 0 < z < len(chemical_symbols) else str(z) for z in unknown)
        known = ", ".join(chemical_symbols[z] for z in sorted(supported))
        raise InputError(f"{_prefix(where)}element(s) {names} not supported by {what} (supported: {known})")
