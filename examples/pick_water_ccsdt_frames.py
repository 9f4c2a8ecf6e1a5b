"""The CCSD(T) training geometries of the shipped water-ccsdt model (issue 18), from the repository root.

160 frames of GFN2-xTB MD at 300/500/700/900 K (seed 201, interleaved by temperature:
work/cc/water-md-train.xyz, see examples/transfer_water_ccsdt.toml), then 160 picked by farthest-point
sampling from the broad PBE pool (MD at 300-1100 K, normal modes to 1500 K; examples/train_water.toml)
in water's internal coordinates (sum and difference of the O-H bonds per 0.05 A, angle per 5 degrees),
seeded with the MD frames, so that the expensive labels reach the stretched bonds MD rarely visits.
Writes work/cc/water-cc-train2.xyz.
"""

import numpy as np
from ase.io import read, write


def internal(atoms):
    """``(3,)``: (r1 + r2) / 0.05 A, |r1 - r2| / 0.05 A, HOH angle / 5 degrees (O first)."""
    p = atoms.positions
    r1, r2 = np.linalg.norm(p[1] - p[0]), np.linalg.norm(p[2] - p[0])
    angle = np.degrees(np.arccos((p[1] - p[0]) @ (p[2] - p[0]) / r1 / r2))
    return np.array([(r1 + r2) / 0.05, abs(r1 - r2) / 0.05, angle / 5.0])


md = read("work/cc/water-md-train.xyz", ":")[:160]
pool = read("work/broad/water-pool-md.xyz", ":") + read("work/broad/water-pool-nm.xyz", ":")
x = np.array([internal(a) for a in pool])
seen = np.array([internal(a) for a in md])
distance = np.min(np.linalg.norm(x[:, None] - seen[None], axis=-1), axis=1)
picks = []
for _ in range(160):
    picks.append(int(np.argmax(distance)))
    distance = np.minimum(distance, np.linalg.norm(x - x[picks[-1]], axis=-1))
write("work/cc/water-cc-train2.xyz", md + [pool[i] for i in picks])
