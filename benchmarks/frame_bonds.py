"""How many sampled frames are no longer the molecule their SMILES names (issue 19's data quality).

    python benchmarks/frame_bonds.py datasets/organic-pbe-def2svp/frames/{train,val,test}.xyz

For every frame that carries a SMILES, the bond graph of the SMILES (RDKit, explicit hydrogens; the
frames keep RDKit's atom order) is compared with the frame's: a bond of the SMILES longer than 1.4x the
sum of the covalent radii (``mlwfcalc.domain.BOND_FACTOR``: broken) or a pair the SMILES does not bond
closer than ``mlwfcalc.data.sampling.NEW_BOND_FACTOR`` times it (formed). Both temperatures of a molecule
failing alike point at the GFN2-xTB relaxation (an unstable isomer that rearranges), one alone at the
MD. ``mlwfcalc sample --every-frame`` now leaves such molecules out (``keep_bonds``); this counts what
frames sampled before that hold. Prints Markdown.
"""

import argparse

import numpy as np
from ase.data import covalent_radii
from ase.io import read
from rdkit import Chem, RDLogger

from mlwfcalc.data.molecules import smiles_of
from mlwfcalc.data.sampling import NEW_BOND_FACTOR
from mlwfcalc.domain import BOND_FACTOR, distance_matrix


def changed_bonds(frame) -> tuple[int, int]:
    """``(broken, formed)`` bond counts of ``frame`` against its SMILES' graph."""
    mol = Chem.MolFromSmiles(smiles_of(frame))
    if mol is None:
        raise ValueError(f"{smiles_of(frame)!r}: RDKit cannot read this SMILES")
    mol = Chem.AddHs(mol)
    if [a.GetAtomicNum() for a in mol.GetAtoms()] != frame.numbers.tolist():
        raise ValueError(f"{smiles_of(frame)}: the frame's atoms are not in RDKit's order")
    n = len(frame)
    bonded = np.zeros((n, n), bool)
    for bond in mol.GetBonds():
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        bonded[i, j] = bonded[j, i] = True
    dist = distance_matrix(frame.positions)
    radii = covalent_radii[frame.numbers][:, None] + covalent_radii[frame.numbers][None]
    return (int((bonded & (dist > BOND_FACTOR * radii)).sum() // 2),
            int((~bonded & (dist < NEW_BOND_FACTOR * radii)).sum() // 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("frames", nargs="+", help="extxyz files whose frames carry info['smiles']")
    args = parser.parse_args()
    RDLogger.DisableLog("rdApp.*")
    print("| file | frames | bond graph changed | molecules | of which in every frame of the molecule |")
    print("|---|---|---|---|---|")
    examples = []
    for path in args.frames:
        frames = [f for f in read(path, ":") if smiles_of(f)]
        changed: dict[str, list[bool]] = {}
        unreadable = []
        for frame in frames:
            try:
                broken, formed = changed_bonds(frame)
            except ValueError as error:
                unreadable.append(str(error))
                continue
            changed.setdefault(smiles_of(frame), []).append(bool(broken or formed))
        bad = {smiles: flags for smiles, flags in changed.items() if any(flags)}
        everywhere = sum(all(flags) for flags in bad.values())
        if unreadable:
            examples.append(f"{len(unreadable)} frames of {path} not checked ({unreadable[0]})")
        print(f"| {path} | {len(frames)} | {sum(map(sum, bad.values()))} | {len(bad)} | {everywhere} |")
        examples += [f"{smiles} ({path.rsplit('/', 1)[-1]}: {sum(flags)} of {len(flags)})" for smiles, flags in bad.items()]
    print(f"\nMolecules: {', '.join(examples)}")


if __name__ == "__main__":
    main()
