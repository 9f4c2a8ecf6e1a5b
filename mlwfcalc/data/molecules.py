"""Small organic molecules without the internet: enumeration, coverage, conformers, a molecule-disjoint split.

:func:`enumerate_molecules` grows random molecular graphs of C, N, O (and F) heavy atoms, GDB-style:
start from one heavy atom, or (half of the molecules) from a common motif that random growth would
rarely close (a benzene, pyridine, pyrrole, furan or imidazole ring, a carbonyl, carboxyl, amide or
nitrile group), then repeatedly add an atom on a free valence, close a ring between two atoms with
free valences, or raise a bond order, with the valences C 4, N 3, O 2, F 1 respected at every step.
Hydrogens fill the remaining valences. RDKit sanitises each graph (aromaticity, valences), its
canonical SMILES de-duplicates, and chemical filters drop what a QM9-like set does
not hold (peroxides, N-N-N chains, F on N or O, rings below 3 or above 8 atoms, allenes in small
rings, bridgehead strain a 3D embedding cannot handle). Everything is seeded.

:func:`coverage` counts elements, sizes, rings and functional groups (SMARTS); :func:`split_molecules`
splits by molecule, so no conformer of a validation or test molecule is ever trained on;
:func:`conformer` embeds one 3D structure (RDKit ETKDGv3 + MMFF94), the start of GFN2-xTB sampling.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable

import numpy as np
from ase import Atoms

from ..validation import InputError

#: Heavy-atom valences of the enumeration.
VALENCE = {"C": 4, "N": 3, "O": 2, "F": 1}

#: How often each element is drawn for a new heavy atom (renormalised over the elements asked for),
#: roughly the heavy-atom make-up of QM9.
ELEMENT_WEIGHTS = {"C": 0.55, "N": 0.18, "O": 0.2, "F": 0.07}

#: Motifs a molecule may grow from (Kekule graphs: heavy atoms, bonds with orders) and how often each is
#: drawn; random growth alone yields an aromatic ring in about 1 % of molecules and few carbonyls.
FRAGMENTS = {
    "benzene": (("C",) * 6, {(0, 1): 2, (1, 2): 1, (2, 3): 2, (3, 4): 1, (4, 5): 2, (0, 5): 1}),
    "pyridine": (("N",) + ("C",) * 5, {(0, 1): 2, (1, 2): 1, (2, 3): 2, (3, 4): 1, (4, 5): 2, (0, 5): 1}),
    "pyrrole": (("N",) + ("C",) * 4, {(0, 1): 1, (1, 2): 2, (2, 3): 1, (3, 4): 2, (0, 4): 1}),
    "furan": (("O",) + ("C",) * 4, {(0, 1): 1, (1, 2): 2, (2, 3): 1, (3, 4): 2, (0, 4): 1}),
    "imidazole": (("N", "C", "N", "C", "C"), {(0, 1): 1, (1, 2): 2, (2, 3): 1, (3, 4): 2, (0, 4): 1}),
    "carbonyl": (("C", "O"), {(0, 1): 2}),
    "carboxyl": (("C", "O", "O"), {(0, 1): 2, (0, 2): 1}),
    "amide": (("C", "O", "N"), {(0, 1): 2, (0, 2): 1}),
    "nitrile": (("C", "N"), {(0, 1): 3}),
    "ester": (("C", "O", "O", "C"), {(0, 1): 2, (0, 2): 1, (2, 3): 1}),
    "hydroxyl": (("C", "O"), {(0, 1): 1}),
}
FRAGMENT_WEIGHTS = {"benzene": 0.25, "pyridine": 0.1, "pyrrole": 0.05, "furan": 0.05, "imidazole": 0.05,
                    "carbonyl": 0.2, "carboxyl": 0.1, "amide": 0.1, "nitrile": 0.1}
#: Share of molecules grown from a motif of :data:`FRAGMENTS`.
FRAGMENT_PROBABILITY = 0.5


@dataclass(frozen=True)
class Composition:
    """How the enumeration draws: element weights, motif weights, the share grown from a motif, and the
    probability of a new heavy atom joining with a multiple bond (the imines, nitriles and alkenes).
    ``keep_motif``: ring closures and bond-order raises never act within the motif (so a benzene stays
    aromatic and an ester an ester)."""

    elements: dict
    fragments: dict
    fragment_probability: float
    multiple_bond_probability: float
    keep_motif: bool = False


#: Named draws of :func:`enumerate_molecules`. ``"qm9"``: QM9's heavy-atom make-up (the first organic set,
#: rich in amines and imines). ``"realistic"``: the make-up of drug-like and natural small molecules: fewer N
#: (amines, imines), more O, esters and acids, two in three molecules grown from a motif, aromatics first.
COMPOSITIONS = {
    "qm9": Composition(ELEMENT_WEIGHTS, FRAGMENT_WEIGHTS, FRAGMENT_PROBABILITY, 0.25),
    "realistic": Composition(
        {"C": 0.66, "N": 0.07, "O": 0.24, "F": 0.03},
        {"benzene": 0.34, "pyridine": 0.10, "pyrrole": 0.04, "furan": 0.07, "imidazole": 0.03,
         "carbonyl": 0.10, "carboxyl": 0.10, "ester": 0.10, "amide": 0.05, "nitrile": 0.02, "hydroxyl": 0.05},
        0.7, 0.12, keep_motif=True),
}

#: Functional groups reported by :func:`coverage` (RDKit SMARTS).
FUNCTIONAL_GROUPS = {
    "alcohol": "[CX4][OX2H]",
    "ether": "[OD2]([#6])[#6]",
    "aldehyde": "[CX3H1](=O)[#6,#1]",
    "ketone": "[#6][CX3](=O)[#6]",
    "carboxylic acid": "[CX3](=O)[OX2H1]",
    "ester": "[#6][CX3](=O)[OX2H0][#6]",
    "amide": "[NX3][CX3](=[OX1])",
    "amine": "[NX3;!$(N-C=[O,N])]",
    "imine": "[CX3]=[NX2]",
    "nitrile": "[NX1]#[CX2]",
    "alkene": "[CX3]=[CX3]",
    "alkyne": "[CX2]#[CX2]",
    "aromatic ring": "a",
    "fluoro": "[#6]F",
}

_FORBIDDEN = ["[OX2][OX2]", "[#7][#7][#7]", "[a;r3]", "[N,O]F", "[N]=[N]=[N]", "C=C=C", "[R]=[R]=[R]"]


@dataclass(frozen=True)
class Molecule:
    """One enumerated molecule: canonical SMILES, heavy-atom count, molecular formula (Hill)."""

    smiles: str
    heavy_atoms: int
    formula: str


def _chem():
    try:
        from rdkit import Chem, RDLogger
    except ImportError:
        raise InputError(f"mlwfcalc molecules needs RDKit: pip install 'mlwfcalc[organic]' (from a clone: "
                         f"pip install -e \".[organic]\")") from None
    RDLogger.DisableLog("rdApp.*")
    return Chem


def enumerate_molecules(n: int, max_heavy: int = 9, elements: str = "CNO", seed: int = 0,
                        max_attempts_factor: int = 200, composition: str = "qm9",
                        exclude: Iterable[str] = ()) -> list[Molecule]:
    """``n`` distinct molecules with 1 to ``max_heavy`` heavy atoms from ``elements`` (letters of C, N, O, F).

    Sizes are drawn uniformly, elements and motifs with the weights of ``composition`` (a name of
    :data:`COMPOSITIONS`; for ``"qm9"`` half the molecules start from a motif of :data:`FRAGMENTS` that
    fits the size and elements), and each growth step picks its move at random, so the set covers small
    and large, acyclic, ring and aromatic systems. Molecules whose canonical SMILES is in ``exclude`` (for
    example the validation and test molecules of an earlier set) are never returned.
    Raises InputError if fewer than ``n`` distinct molecules turn up in ``n * max_attempts_factor`` tries.
    """
    Chem = _chem()
    from rdkit.Chem.rdMolDescriptors import CalcMolFormula

    unknown = set(elements) - set(VALENCE)
    if unknown or not elements:
        raise InputError(f"elements {elements!r}: choose from {''.join(VALENCE)}")
    if composition not in COMPOSITIONS:
        raise InputError(f"composition {composition!r}: choose from {', '.join(COMPOSITIONS)}")
    draw = COMPOSITIONS[composition]
    excluded = {canonical_smiles(s) for s in exclude if s}
    forbidden = [Chem.MolFromSmarts(s) for s in _FORBIDDEN]
    rng = np.random.default_rng(seed)
    found: dict[str, Molecule] = {}
    for _ in range(n * max_attempts_factor):
        if len(found) == n:
            break
        smiles = _grow(Chem, rng, int(rng.integers(1, max_heavy + 1)), elements, draw)
        if smiles is None or smiles in found or smiles in excluded:
            continue
        mol = Chem.MolFromSmiles(smiles)
        if any(mol.HasSubstructMatch(f) for f in forbidden) or not _rings_ok(mol):
            continue
        found[smiles] = Molecule(smiles, mol.GetNumHeavyAtoms(), CalcMolFormula(mol))
    if len(found) < n:
        raise InputError(f"only {len(found)} distinct molecules of at most {max_heavy} heavy atoms from {elements} "
                         f"turned up; ask for fewer or allow more atoms or elements")
    return sorted(found.values(), key=lambda m: (m.heavy_atoms, m.smiles))


def _grow(Chem, rng: np.random.Generator, size: int, elements: str, draw: Composition) -> str | None:
    """One random graph of ``size`` heavy atoms drawn as ``draw`` says; its canonical SMILES, or None if
    RDKit rejects it."""
    choices = list(elements)
    weights = np.array([draw.elements[e] for e in choices])
    weights /= weights.sum()
    symbols = [str(rng.choice(choices, p=weights))]
    bonds: dict[tuple[int, int], int] = {}
    motifs = [name for name, (atoms, _) in FRAGMENTS.items()
              if name in draw.fragments and set(atoms) <= set(elements) and len(atoms) <= size]
    if motifs and rng.random() < draw.fragment_probability:
        p = np.array([draw.fragments[name] for name in motifs])
        atoms, fragment_bonds = FRAGMENTS[motifs[int(rng.choice(len(motifs), p=p / p.sum()))]]
        symbols, bonds = list(atoms), dict(fragment_bonds)
    motif = set(range(len(symbols))) if draw.keep_motif and bonds else set()

    def free(i: int) -> int:
        return VALENCE[symbols[i]] - sum(order for pair, order in bonds.items() if i in pair)

    for _ in range(8 * size):
        open_atoms = [i for i in range(len(symbols)) if free(i) > 0]
        if not open_atoms:
            break
        move = rng.random()
        if len(symbols) < size and move < 0.7:  # add an atom
            i = int(rng.choice(open_atoms))
            symbol = str(rng.choice(choices, p=weights))
            order = int(rng.integers(1, min(free(i), VALENCE[symbol], 3) + 1)) if rng.random() < draw.multiple_bond_probability else 1
            symbols.append(symbol)
            bonds[(i, len(symbols) - 1)] = order
        elif move < 0.85 and len(open_atoms) >= 2:  # close a ring
            i, j = sorted(int(x) for x in rng.choice(open_atoms, 2, replace=False))
            if (i, j) not in bonds and not {i, j} <= motif:
                bonds[(i, j)] = 1
        else:  # raise a bond order
            candidates = [p for p, o in bonds.items()
                          if o < 3 and free(p[0]) > 0 and free(p[1]) > 0 and not set(p) <= motif]
            if candidates:
                bonds[candidates[int(rng.integers(len(candidates)))]] += 1
        if len(symbols) >= size and rng.random() < 0.3:
            break
    editable = Chem.RWMol()
    for symbol in symbols:
        editable.AddAtom(Chem.Atom(symbol))
    kinds = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE}
    for (i, j), order in bonds.items():
        editable.AddBond(i, j, kinds[order])
    try:
        mol = editable.GetMol()
        Chem.SanitizeMol(mol)
    except Exception:  # RDKit's valence and kekulisation checks
        return None
    if Chem.GetFormalCharge(mol) != 0 or any(a.GetNumRadicalElectrons() for a in mol.GetAtoms()):
        return None
    return Chem.MolToSmiles(mol)


def _rings_ok(mol) -> bool:
    """Rings of 3-8 atoms, no triple bond in a ring, no atom in more than 2 rings, and no bridged ring
    system (two rings sharing more than one bond: a strained cage that 3D embedding cannot build)."""
    info = mol.GetRingInfo()
    rings = [set(ring) for ring in info.AtomRings()]
    if any(not 3 <= len(ring) <= 8 for ring in rings):
        return False
    if any(len(a & b) > 2 for k, a in enumerate(rings) for b in rings[k + 1:]):
        return False
    for bond in mol.GetBonds():
        if bond.GetBondTypeAsDouble() == 3 and bond.IsInRing():
            return False
    return all(info.NumAtomRings(a.GetIdx()) <= 2 for a in mol.GetAtoms())


def canonical_smiles(smiles: str) -> str:
    """RDKit's canonical form of ``smiles`` (InputError if RDKit cannot parse it)."""
    Chem = _chem()
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise InputError(f"RDKit cannot parse the SMILES {smiles!r}")
    return Chem.MolToSmiles(mol)


def smiles_of(atoms: Atoms) -> str:
    """The SMILES in ``atoms.info["smiles"]`` ("" when absent). ASE's extxyz reader turns the value ``F``
    (hydrogen fluoride) into the boolean False; it is mapped back here."""
    value = atoms.info.get("smiles", "")
    if isinstance(value, bool):
        return "T" if value else "F"
    return str(value)


def families(smiles: str) -> list[str]:
    """The functional groups of :data:`FUNCTIONAL_GROUPS` that the molecule ``smiles`` contains, in that order."""
    Chem = _chem()
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise InputError(f"RDKit cannot parse the SMILES {smiles!r}")
    return [name for name, pattern in _patterns().items() if mol.HasSubstructMatch(pattern)]


def _patterns() -> dict:
    Chem = _chem()
    return {name: Chem.MolFromSmarts(s) for name, s in FUNCTIONAL_GROUPS.items()}


def coverage(molecules: list[Molecule]) -> dict:
    """Counts over ``molecules``: heavy-atom sizes, elements (molecules containing each), ring counts,
    aromatic molecules, and each functional group of :data:`FUNCTIONAL_GROUPS` (molecules containing it)."""
    Chem = _chem()
    patterns = _patterns()
    sizes, elements, rings, groups = Counter(), Counter(), Counter(), Counter()
    for m in molecules:
        mol = Chem.MolFromSmiles(m.smiles)
        sizes[m.heavy_atoms] += 1
        elements.update({a.GetSymbol() for a in mol.GetAtoms()})
        rings[mol.GetRingInfo().NumRings()] += 1
        groups.update(name for name, p in patterns.items() if mol.HasSubstructMatch(p))
    return {"molecules": len(molecules), "heavy_atoms": dict(sorted(sizes.items())),
            "elements": dict(sorted(elements.items())), "rings": dict(sorted(rings.items())),
            "functional_groups": {name: groups.get(name, 0) for name in FUNCTIONAL_GROUPS}}


def split_molecules(molecules: list[Molecule], fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                    seed: int = 0) -> dict[str, list[Molecule]]:
    """``{"train", "val", "test"}`` by molecule (never by conformer), seeded, sizes spread over all three."""
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-9 or min(fractions) < 0:
        raise InputError(f"split fractions {fractions}: give three non-negative numbers that sum to 1")
    rng = np.random.default_rng(seed)
    parts = {"train": [], "val": [], "test": []}
    by_size: dict[int, list[Molecule]] = {}
    for m in molecules:
        by_size.setdefault(m.heavy_atoms, []).append(m)
    for size in sorted(by_size):  # stratified by size, so each split spans small and large molecules
        group = [by_size[size][i] for i in rng.permutation(len(by_size[size]))]
        n_val, n_test = round(fractions[1] * len(group)), round(fractions[2] * len(group))
        parts["val"] += group[:n_val]
        parts["test"] += group[n_val:n_val + n_test]
        parts["train"] += group[n_val + n_test:]
    return parts


def conformer(molecule: Molecule, seed: int = 0) -> Atoms:
    """One 3D structure (Angstrom) of ``molecule`` with hydrogens: RDKit ETKDGv3, then MMFF94.

    ``info`` carries the SMILES. Raises InputError when RDKit cannot embed the graph.
    """
    Chem = _chem()
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(molecule.smiles))
    parameters = AllChem.ETKDGv3()
    parameters.randomSeed = seed
    if AllChem.EmbedMolecule(mol, parameters) != 0:
        raise InputError(f"RDKit could not embed {molecule.smiles} in 3D")
    if AllChem.MMFFHasAllMoleculeParams(mol):
        AllChem.MMFFOptimizeMolecule(mol, maxIters=2000)
    positions = mol.GetConformer().GetPositions()
    return Atoms([a.GetSymbol() for a in mol.GetAtoms()], positions=positions,
                 info={"smiles": molecule.smiles, "source": f"RDKit ETKDGv3 (randomSeed {seed}) + MMFF94"})
