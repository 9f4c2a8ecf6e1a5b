"""Frames along a degenerate tautomerisation path (malondialdehyde's O-H...O proton transfer), for labelling.

GFN2-xTB MD rarely crosses the proton-transfer barrier that PBE finds low, so a model trained on MD
frames alone leaves its domain when its own MD transfers the proton (issue 17). For a transfer between
two equivalent tautomers the other end of the path is known exactly: it is the same molecule with its
atoms relabelled by the tautomer's symmetry (``--mapping``). Each thermal frame X is relabelled, aligned
onto X (rotation, or rotation-reflection, whichever fits better: the energy is invariant under both),
and interpolated, X + lam (X' - X), with lam drawn uniformly from [--lam-min, 0.5]. At lam = 0.5 the
frame sits at a thermal version of the symmetric transition structure; lam > 0.5 repeats lam < 0.5 up
to the symmetry, so it is not drawn.

Usage (malondialdehyde, atoms O C C C O H H H H as in examples/structures/malondialdehyde.xyz):

    python examples/tautomer_path_frames.py work/mal/pool-md.xyz -o work/mal/pool-pt.xyz \
        --mapping 4,3,2,1,0,5,8,7,6 --frames 200 --seed 330
"""

from __future__ import annotations

import argparse

import numpy as np
from ase.io import read, write


def best_alignment(mobile: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``mobile`` (n, 3) moved onto ``target`` (n, 3) by the orthogonal map (proper or improper) of least RMSD."""
    mobile_c, target_c = mobile - mobile.mean(0), target - target.mean(0)
    u, _, vt = np.linalg.svd(mobile_c.T @ target_c)
    candidates = [u @ vt]  # optimal orthogonal map, det +1 or -1
    flip = np.diag([1.0, 1.0, -1.0])
    candidates.append(u @ flip @ vt)  # the best map of the other handedness
    moved = [mobile_c @ r + target.mean(0) for r in candidates]
    return min(moved, key=lambda m: float(np.sum((m - target) ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="thermal frames (any ASE-readable file)")
    parser.add_argument("-o", "--output", required=True, help="extended xyz to write")
    parser.add_argument("--mapping", required=True,
                        help="comma-separated atom indices: atom i of the other tautomer is atom mapping[i] here")
    parser.add_argument("--frames", type=int, default=200, help="frames to write (drawn without replacement)")
    parser.add_argument("--lam-min", type=float, default=0.1, help="smallest interpolation fraction")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    frames = read(args.source, index=":")
    mapping = np.array([int(i) for i in args.mapping.split(",")])
    numbers = frames[0].numbers
    if sorted(mapping) != list(range(len(numbers))) or not np.array_equal(numbers[mapping], numbers):
        raise SystemExit(f"--mapping must be a permutation of 0..{len(numbers) - 1} that maps each atom onto one "
                         "of the same element")
    rng = np.random.default_rng(args.seed)
    picks = rng.choice(len(frames), size=min(args.frames, len(frames)), replace=False)
    out = []
    for k in picks:
        atoms = frames[k].copy()
        x = atoms.positions
        other = best_alignment(x[mapping], x)
        lam = rng.uniform(args.lam_min, 0.5)
        atoms.positions = x + lam * (other - x)
        atoms.info = {**{key: atoms.info[key] for key in ("target_temperature_K", "seed") if key in atoms.info},
                      "method": "tautomer-path", "path_fraction": float(lam), "source_frame": int(k)}
        out.append(atoms)
    write(args.output, out)
    print(f"{len(out)} frames along the tautomer path written to {args.output}")


if __name__ == "__main__":
    main()
