"""A model's training domain, and the refusal of structures outside it.

The domain is measured on the training structures by ``mlwfcalc train`` and kept in the model's
``config.json`` (section ``"domain"``):

* ``compositions``: ``"formulas"`` (a per-molecule model answers only for the chemical formulas it saw)
  or ``"elements"`` (a chemical-space model answers for any molecule of its elements and sizes);
* ``formulas``: every Hill formula seen, with its number of structures; ``n_atoms``: the sizes seen
  (atoms), ``n_heavy_atoms``: the same in atoms heavier than hydrogen (None in models recorded before
  it; a chemical-space model refuses a size outside either range);
* ``distances_ang``: the distances seen, each as a list of intervals (measured on a 0.02 A grid):
  ``"A-B"``, every distance between an A and a B atom (the bonded shell, the next shells...);
  ``"A->B#k"``, over the A atoms, the distance to the k-th nearest B atom (k = 1-4: the first shell).
  A bond stretched into the gap between two shells, a fragment (an atom far from every partner it
  had) or a compressed bond lies in no interval;
* ``n_fragments``: the numbers of covalently bonded fragments seen (atoms closer than ``BOND_FACTOR``
  times the sum of their covalent radii are bonded; None in models recorded before it): a dimer of
  molecules trained on one at a time is refused;
* ``margin_ang``: how far outside an interval a distance may lie before the structure is refused; below the
  shortest distance seen of a pair (the lower end of its 0.02 A bin), the share :data:`COMPRESSION_MARGIN` of it:
  a compressed bond climbs the repulsive wall several times faster than a stretched one falls, and the
  uncertainty does not see it coming (ethanol's C-C at 1.29 A, 0.09 A below training, had forces 395 meV/A
  off, uracil's C-H at 0.90 A, 0.02 A below, 267 meV/A, both under the hard limit). A per-molecule model saw
  its own bonds vibrate at temperature, so none; a chemical-space model's shortest distances are of the
  molecules sampled, and a new molecule's bond may be a little shorter (half the margin: no margin would
  refuse 18 instead of 9 of the 120 frames of organic's molecule-disjoint test set).

A chemical-space model (``"elements"``) reads the distance intervals loosely, since across hundreds of
molecules a hole between the distances seen is a hole between the molecules sampled, not a geometry no
molecule has. It refuses a distance shorter than any seen (a compressed bond, an unusually close
contact), a bonded distance stretched into the gap after the bonded shell (the intervals that start
within bonding range, ``BOND_FACTOR`` times the covalent radii, taken as one), and more fragments than
seen; a distance longer than any seen is a larger molecule, which the size ranges bound (a
chemical-space domain recorded without ``n_fragments`` keeps the upper ends, its only fragment check,
and treats the intervals after the gap as one).

Outside the domain the network extrapolates, and its numbers can be wrong by eV without any sign
of it: :meth:`TrainingDomain.violations` names what is outside, and :func:`enforce` raises
:class:`OutOfDomainError` (or, with ``domain="warn"``, warns and lets an expert go on).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Callable, Iterable, Sequence

import numpy as np
from ase.data import atomic_numbers, chemical_symbols, covalent_radii
from ase.formula import Formula
from scipy.sparse.csgraph import connected_components

from .validation import InputError

#: Share of the margin allowed below the shortest distance seen of a pair, by how compositions are read
#: (per molecule, or chemical space; module docstring).
COMPRESSION_MARGIN = {"formulas": 0.0, "elements": 0.5}
#: Policies for a structure outside the domain: raise :class:`OutOfDomainError`, or warn and compute.
DOMAIN_POLICIES = ("refuse", "warn")
#: Default margin (Angstrom) beyond the distance ranges seen in training before a structure is refused.
DEFAULT_MARGIN_ANG = 0.1
#: How many nearest neighbours of each element per atom the domain records (the first shell).
NEIGHBOUR_RANKS = 4
#: Resolution (Angstrom) of the pair-distance intervals, and their number (up to 50 A; longer distances
#: count in the last interval).
DISTANCE_BIN_ANG = 0.02
N_DISTANCE_BINS = 2500
#: Two atoms are bonded when closer than this factor times the sum of their covalent radii (ASE's): covers
#: bonds stretched by thermal motion at 600 K (F-F up to 1.60 A, C-H up to 1.50 A, C-C up to 2.13 A).
BOND_FACTOR = 1.4


class OutOfDomainError(InputError):
    """A structure outside the model's training domain; the message names what is outside and the fix."""


class OutOfDomainWarning(UserWarning):
    """A structure outside the model's training domain was computed anyway (``domain="warn"``)."""


def hill_formula(numbers: Sequence[int]) -> str:
    """Hill formula (C first, then H, then alphabetical; other elements alphabetical), e.g. ``"C2H6O"``."""
    return Formula.from_list([chemical_symbols[int(z)] for z in numbers]).format("hill")


def _pair_key(a: int, b: int) -> str:
    a, b = sorted((int(a), int(b)))
    return f"{chemical_symbols[a]}-{chemical_symbols[b]}"


def distance_matrix(positions_ang: np.ndarray) -> np.ndarray:
    """``(n, n)`` interatomic distances (Angstrom) of ``(n, 3)`` positions, ``inf`` on the diagonal."""
    positions_ang = np.asarray(positions_ang, dtype=float)
    dist = np.linalg.norm(positions_ang[:, None] - positions_ang[None], axis=-1)
    np.fill_diagonal(dist, np.inf)
    return dist


def _distance_table(numbers: np.ndarray, dist: np.ndarray) -> dict[str, np.ndarray]:
    """The distances a domain records, by key: ``"A-B"``, every A-B distance; ``"A->B#k"``, over the A
    atoms, the distance to the k-th nearest B atom (k = 1 .. ``NEIGHBOUR_RANKS``); ``dist`` from
    :func:`distance_matrix`."""
    numbers = np.asarray(numbers)
    table = {}
    elements = sorted(set(numbers.tolist()))
    for a in elements:
        rows = numbers == a
        for b in elements:
            block = dist[np.ix_(rows, numbers == b)]
            if a < b:
                table[_pair_key(a, b)] = block.reshape(-1)
            elif a == b and len(block) > 1:
                table[_pair_key(a, b)] = block[np.triu_indices(len(block), 1)]
            ranked = np.sort(block, axis=1)
            for k in range(min(NEIGHBOUR_RANKS, ranked.shape[1] - (a == b))):
                table[f"{chemical_symbols[a]}->{chemical_symbols[b]}#{k + 1}"] = ranked[:, k]
    return table


def covalent_bonds(numbers: Sequence[int], dist: np.ndarray) -> np.ndarray:
    """``(n, n)`` bool bond graph: the atom pairs closer than ``BOND_FACTOR`` times the sum of their covalent
    radii; ``dist`` from :func:`distance_matrix`. The fragment count reads it, and the sampler compares a
    frame's with its start's."""
    radii = covalent_radii[np.asarray(numbers)]
    return dist < BOND_FACTOR * (radii[:, None] + radii[None])


def _count_fragments(numbers: Sequence[int], dist: np.ndarray) -> int:
    """How many covalently bonded fragments the structure falls into (:func:`covalent_bonds`); ``dist`` from
    :func:`distance_matrix`."""
    return int(connected_components(covalent_bonds(numbers, dist), directed=False)[0])


def _bonding_range_ang(key: str) -> float:
    """Longest bonded distance (Angstrom) of the element pair of a distance key (``"C-O"``, ``"C->O#2"``)."""
    a, b = key.split("#")[0].replace("->", "-").split("-")
    return BOND_FACTOR * (covalent_radii[atomic_numbers[a]] + covalent_radii[atomic_numbers[b]])


def _intervals(histogram: np.ndarray) -> list[tuple[float, float]]:
    """Runs of occupied bins of a distance histogram as ``[(low, high), ...]`` Angstrom."""
    occupied = np.concatenate([[False], histogram > 0, [False]])
    edges = np.flatnonzero(occupied[1:] != occupied[:-1])
    return [(round(start * DISTANCE_BIN_ANG, 4), round(stop * DISTANCE_BIN_ANG, 4))
            for start, stop in zip(edges[::2], edges[1::2])]


def _phrase(key: str) -> str:
    """``"H-O"`` -> ``"an H-O distance"``; ``"O->H#2"`` -> ``"an O atom's distance to its 2nd nearest H"``."""
    if "->" not in key:
        return f"a {key} distance"
    pair, rank = key.split("#")
    a, b = pair.split("->")
    ordinal = {"1": "nearest", "2": "2nd nearest", "3": "3rd nearest"}.get(rank, f"{rank}th nearest")
    return f"an {a} atom's distance to its {ordinal} {b}"


def _describe(intervals: list[tuple[float, float]]) -> str:
    """``[(1.32, 1.46), (2.22, inf)]`` -> ``"1.32-1.46 A, 2.22 A or longer"``."""
    return ", ".join(f"{low:.2f}-{high:.2f} A" if np.isfinite(high) else f"{low:.2f} A or longer" for low, high in intervals)


@dataclass
class TrainingDomain:
    """What a model saw in training (Angstrom); see the module docstring for each field."""

    compositions: str = "formulas"
    formulas: dict[str, int] = field(default_factory=dict)
    n_atoms: tuple[int, int] = (0, 0)
    n_heavy_atoms: tuple[int, int] | None = None
    n_fragments: tuple[int, int] | None = None
    distances_ang: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    margin_ang: float = DEFAULT_MARGIN_ANG

    def __post_init__(self):
        if self.compositions not in ("formulas", "elements"):
            raise InputError(f"domain compositions {self.compositions!r}: choose 'formulas' or 'elements'")
        self.n_atoms = tuple(int(n) for n in self.n_atoms)
        if self.n_heavy_atoms is not None:
            self.n_heavy_atoms = tuple(int(n) for n in self.n_heavy_atoms)
        if self.n_fragments is not None:
            self.n_fragments = tuple(int(n) for n in self.n_fragments)
        self.distances_ang = {k: [tuple(map(float, i)) for i in v] for k, v in self.distances_ang.items()}

    @classmethod
    def from_structures(cls, structures: Iterable[tuple[Sequence[int], np.ndarray]], compositions: str = "formulas",
                        margin_ang: float = DEFAULT_MARGIN_ANG) -> "TrainingDomain":
        """Measure the domain of ``(numbers (n,), positions (n, 3) Angstrom)`` structures."""
        formulas: dict[str, int] = {}
        sizes, heavy, fragments, histograms = [], [], [], {}
        for numbers, positions in structures:
            numbers, dist = np.asarray(numbers), distance_matrix(positions)
            fragments.append(_count_fragments(numbers, dist))
            formula = hill_formula(numbers)
            formulas[formula] = formulas.get(formula, 0) + 1
            sizes.append(len(numbers))
            heavy.append(int((numbers > 1).sum()))
            for key, distances in _distance_table(numbers, dist).items():
                bins = np.minimum(np.floor(distances / DISTANCE_BIN_ANG).astype(int), N_DISTANCE_BINS - 1)
                histograms.setdefault(key, np.zeros(N_DISTANCE_BINS, dtype=np.int64))
                histograms[key] += np.bincount(bins, minlength=N_DISTANCE_BINS)
        if not sizes:
            raise InputError("no structures to measure a training domain on")
        return cls(compositions=compositions, formulas=dict(sorted(formulas.items())), n_atoms=(min(sizes), max(sizes)),
                   n_heavy_atoms=(min(heavy), max(heavy)), n_fragments=(min(fragments), max(fragments)),
                   distances_ang={key: _intervals(h) for key, h in sorted(histograms.items())}, margin_ang=margin_ang)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["n_atoms"] = list(self.n_atoms)
        for name in ("n_heavy_atoms", "n_fragments"):
            if out[name] is None:  # a domain recorded before they were counted
                del out[name]
            else:
                out[name] = list(out[name])
        out["distances_ang"] = {k: [list(i) for i in v] for k, v in self.distances_ang.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "TrainingDomain":
        try:
            return cls(**data)
        except (TypeError, ValueError) as err:
            raise InputError(f"unreadable training domain in the model config ({err}); retrain or rerun "
                             "`mlwfcalc fit-domain`") from None

    def summary(self) -> str:
        """One line for ``mlwfcalc models``, e.g. ``"H2O (1000 structures), 3 atoms"``."""
        if self.compositions == "formulas":
            what = ", ".join(f"{f} ({n} structures)" for f, n in self.formulas.items())
        else:
            what = f"molecules of {' '.join(self.elements)} ({len(self.formulas)} formulas, " \
                   f"{sum(self.formulas.values())} structures)"
        def span(low, high):
            return f"{low}{'' if low == high else f'-{high}'}"

        line = f"{what}; {span(*self.n_atoms)} atoms"
        if self.compositions == "elements" and self.n_heavy_atoms is not None:
            line += f", {span(*self.n_heavy_atoms)} heavy atoms"
        return line

    @cached_property
    def elements(self) -> list[str]:
        """The element symbols seen in training, e.g. ``["C", "H", "O"]`` (parsed once: every prediction asks)."""
        return sorted({s for f in self.formulas for s in Formula(f).count()})

    def violations(self, numbers: Sequence[int], positions_ang: np.ndarray) -> list[str]:
        """What about this structure lies outside the domain (empty: inside), one phrase per finding."""
        numbers = np.asarray(numbers)
        found = []
        formula = hill_formula(numbers)
        if self.compositions == "formulas":
            if formula not in self.formulas:
                found.append(f"formula {formula} was never seen in training (seen: {', '.join(self.formulas)})")
                return found  # distances of another molecule say nothing more
        else:
            unseen = sorted(set(Formula(formula).count()) - set(self.elements))
            if unseen:
                found.append(f"element{'s' * (len(unseen) > 1)} {', '.join(unseen)} never seen in training "
                             f"(seen: {', '.join(self.elements)})")
                return found  # its distances say nothing more
            if not self.n_atoms[0] <= len(numbers) <= self.n_atoms[1]:
                found.append(f"{len(numbers)} atoms, outside the {self.n_atoms[0]}-{self.n_atoms[1]} seen in training")
            heavy = int((numbers > 1).sum())
            if self.n_heavy_atoms is not None and not self.n_heavy_atoms[0] <= heavy <= self.n_heavy_atoms[1]:
                found.append(f"{heavy} heavy (non-hydrogen) atoms, outside the {self.n_heavy_atoms[0]}-"
                             f"{self.n_heavy_atoms[1]} seen in training")
        dist = distance_matrix(positions_ang)
        if self.n_fragments is not None:
            pieces = _count_fragments(numbers, dist)
            if not self.n_fragments[0] <= pieces <= self.n_fragments[1]:
                seen = "-".join(map(str, sorted(set(self.n_fragments))))
                found.append(f"{pieces} separate fragment{'s' * (pieces > 1)} (atoms within {BOND_FACTOR} times their "
                             f"covalent radii counted as bonded), where every training structure had {seen}")
        for key, distances in _distance_table(numbers, dist).items():
            if key not in self.distances_ang:
                if "#" not in key:
                    found.append(f"no {key} pair was seen in training")
                continue
            seen = self.distances_ang[key]
            if self.compositions == "elements":
                seen = self._chemical_space_intervals(key, seen)
            inside = np.zeros(len(distances), dtype=bool)
            shortest = seen[0][0]
            for low, high in seen:
                below = self.margin_ang * (COMPRESSION_MARGIN[self.compositions] if low == shortest else 1.0)
                inside |= (distances >= low - below) & (distances <= high + self.margin_ang)
            if not inside.all():
                worst = distances[~inside][np.argmax(np.abs(distances[~inside] - np.median(distances)))]
                found.append(f"{_phrase(key)} of {worst:.2f} A, where training saw none (seen: {_describe(seen)})")
        return found

    def _chemical_space_intervals(self, key: str, seen: list[tuple[float, float]]) -> list[tuple[float, float]]:
        """The intervals a chemical-space domain checks (see the module docstring): the bonded shell (the
        intervals that start within bonding range, as one) and everything past the gap after it, or, when
        no interval starts within bonding range, everything from the shortest distance seen on."""
        if self.n_fragments is None:  # recorded without fragments: the upper ends are its fragment check
            return seen if len(seen) <= 2 else [seen[0], (seen[1][0], seen[-1][1])]
        n_bonded = sum(low < _bonding_range_ang(key) for low, _ in seen)  # sorted: the first n_bonded
        if n_bonded == 0:
            return [(seen[0][0], np.inf)]
        shell = (seen[0][0], seen[n_bonded - 1][1])  # single and multiple bonds: one shell
        return [shell] if n_bonded == len(seen) else [shell, (seen[n_bonded][0], np.inf)]


def enforce(domain: TrainingDomain | None, numbers: Sequence[int], positions_ang: np.ndarray, policy: str = "refuse",
            model_name: str = "the model", where: str | None = None,
            suggest: Callable[[str], str] | None = None) -> list[str]:
    """Check one structure against ``domain``: raise, or warn (``policy="warn"``), when it is outside.

    ``suggest(formula)``: a sentence naming the models that cover a formula outside the domain, put into
    the error (the predictor passes :func:`mlwfcalc.io.models_that_fit`, since the shipped models are known
    where the model files are, not here). Returns the violations (empty when inside, or when the model has
    no recorded domain).
    """
    if policy not in DOMAIN_POLICIES:
        raise InputError(f"domain={policy!r}: choose one of {DOMAIN_POLICIES}")
    if domain is None:
        return []
    found = domain.violations(numbers, positions_ang)
    if not found:
        return []
    formula = hill_formula(numbers)
    prefix = f"{where}: " if where else ""
    shown = "; ".join(found[:2]) + (f"; and {len(found) - 2} more" if len(found) > 2 else "")
    message = f"{prefix}{formula} is outside the training domain of {model_name}: {shown}."
    if policy == "warn":
        warnings.warn(message + " Computed anyway (domain='warn'): expect large errors.", OutOfDomainWarning,
                      stacklevel=4)
        return found
    raise OutOfDomainError(message + (suggest(formula) if suggest else "") +
                           " To compute anyway, pass domain='warn' (command line: --domain warn).")
