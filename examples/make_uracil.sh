#!/usr/bin/env bash
# Data of the uracil model (issue 17), resumable: each sampling step is skipped when its output exists
# and labelling resumes per geometry, so the script can be killed and rerun.
#   bash examples/make_uracil.sh                 # sample, then label (2 PySCF workers)
#   SAMPLE_ONLY=1 bash examples/make_uracil.sh   # stop before labelling
# GFN2-xTB MD at 300, 500, 700, 900 K (200 frames each, seed 401) and normal modes to 1200 K (300, seed
# 420), interleaved round-robin so that any prefix is balanced; test trajectories at 300-900 K (seeds
# 31-34, 40 frames each). PBE/def2-SVP labels cost about 40 s per geometry and core: the first 300 training
# frames and the 160 test frames first, then the rest of the 1,100-frame pool.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
S=examples/structures/uracil.xyz; D=${DATA:-work/uracil}; mkdir -p $D
[ -s $D/pool-md.xyz ] || mlwfcalc sample $S -o $D/pool-md.xyz --temperature 300,500,700,900 --seed 401 --frames 200 --interval 40 -q
[ -s $D/pool-nm.xyz ] || mlwfcalc sample $S -o $D/pool-nm.xyz --method normal-modes --temperature 300,600,900,1200 --frames 300 --seed 420 -q
for T in 300:31 500:32 700:33 900:34; do
  [ -s $D/md${T%:*}-s${T#*:}.xyz ] || mlwfcalc sample $S -o $D/md${T%:*}-s${T#*:}.xyz --temperature ${T%:*} --frames 40 --interval 40 --seed ${T#*:} -q
done
[ -s $D/pool-interleaved.xyz ] || python - "$D" <<'PY'
import sys
from ase.io import read, write
d = sys.argv[1]
md = read(f"{d}/pool-md.xyz", index=":"); nm = read(f"{d}/pool-nm.xyz", index=":")
streams = [md[i * 200:(i + 1) * 200] for i in range(4)] + [nm]
out = [s[k] for k in range(300) for s in streams if k < len(s)]
write(f"{d}/pool-interleaved.xyz", out); print(len(out), "interleaved frames")
PY
[ "${SAMPLE_ONLY:-0}" = 1 ] && exit 0
W=${WORKERS:-2}
mlwfcalc label $D/pool-interleaved.xyz@:300 -o $D/uracil-train.db --workers $W -q
for T in 300:31 500:32 700:33 900:34; do
  mlwfcalc label $D/md${T%:*}-s${T#*:}.xyz -o $D/uracil-T${T%:*}.db --workers $W -q
done
mlwfcalc label $D/pool-interleaved.xyz -o $D/uracil-train.db --workers $W -q
