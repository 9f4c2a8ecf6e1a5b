#!/usr/bin/env bash
# Data of the uracil model (issue 17), resumable: each sampling step is skipped when its output exists
# and labelling resumes per geometry, so the script can be killed and rerun.
#   bash examples/make_uracil.sh                 # sample, then label (2 PySCF workers)
#   SAMPLE_ONLY=1 bash examples/make_uracil.sh   # stop before labelling
#   PACK_ONLY=1 bash examples/make_uracil.sh     # archive the new labels as parts in datasets/uracil-pbe-def2svp
# The frames (datasets/uracil-pbe-def2svp/frames) and the labels packed into its train/ and T300/ ... T900/
# are committed: a fresh checkout takes the frames from there and unpacks the labels, then resumes labelling.
# GFN2-xTB MD at 300, 500, 700, 900 K (200 frames each, seed 401) and normal modes to 1200 K (300, seed
# 420), interleaved round-robin so that any prefix is balanced; test trajectories at 300-900 K (seeds
# 31-34, 40 frames each). PBE/def2-SVP labels cost about 50 s per geometry and core: the 160 test frames first,
# then the first 300 training frames, then the rest of the 1,100-frame pool.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
S=examples/structures/uracil.xyz; D=${DATA:-work/uracil}; mkdir -p $D
A=${ARCHIVE:-datasets/uracil-pbe-def2svp}  # committed: the frames and the packed labels
TESTS="300:31 500:32 700:33 900:34"
FRAMES="pool-interleaved.xyz md300-s31.xyz md500-s32.xyz md700-s33.xyz md900-s34.xyz"
for f in $FRAMES; do  # MD is chaotic: another machine need not resample the same frames to 1e-6 A
  [ -s $A/frames/$f ] || continue
  if [ -s $D/$f ] && ! cmp -s $D/$f $A/frames/$f; then
    echo "$D/$f differs from the archived $A/frames/$f: the archived labels are for the latter; move $D away" >&2
    exit 2
  fi
  [ -s $D/$f ] || cp $A/frames/$f $D/
done
if [ ! -s $D/pool-interleaved.xyz ]; then
  [ -s $D/pool-md.xyz ] || mlwfcalc sample $S -o $D/pool-md.xyz --temperature 300,500,700,900 --seed 401 --frames 200 --interval 40 -q
  [ -s $D/pool-nm.xyz ] || mlwfcalc sample $S -o $D/pool-nm.xyz --method normal-modes --temperature 300,600,900,1200 --frames 300 --seed 420 -q
fi
for T in $TESTS; do
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
mkdir -p $A/frames
for f in $FRAMES; do [ -s $A/frames/$f ] || cp $D/$f $A/frames/; done
[ "${SAMPLE_ONLY:-0}" = 1 ] && exit 0
if [ "${PACK_ONLY:-0}" = 1 ]; then
  for s in train T300 T500 T700 T900; do [ -s $D/uracil-$s.db ] && mlwfcalc pack-labels $D/uracil-$s.db -o $A/$s; done
  exit 0
fi
for s in train T300 T500 T700 T900; do
  compgen -G "$A/$s/part-*.safetensors" > /dev/null && mlwfcalc unpack-labels $A/$s -o $D/uracil-$s.db
done
W=${WORKERS:-2}
for T in $TESTS; do  # the test sets first: a model can then be trained and scored on any prefix of the pool
  mlwfcalc label $D/md${T%:*}-s${T#*:}.xyz -o $D/uracil-T${T%:*}.db --workers $W -q
done
# once a uracil model is shipped, its density starts each SCF: the same labels, about a quarter cheaper
GUESS=(); [ -s models/uracil-pbe-def2svp/model.safetensors ] && GUESS=(--guess uracil-pbe-def2svp)
mlwfcalc label $D/pool-interleaved.xyz@:300 -o $D/uracil-train.db --workers $W "${GUESS[@]}" -q
mlwfcalc label $D/pool-interleaved.xyz -o $D/uracil-train.db --workers $W "${GUESS[@]}" -q
