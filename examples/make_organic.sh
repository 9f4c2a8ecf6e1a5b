#!/usr/bin/env bash
# Data of the organic CHNOF model (issue 19), resumable: each step is skipped when its output exists,
# sampling resumes per molecule and labelling per geometry, so the script can be killed and rerun.
#   bash examples/make_organic.sh               # molecules, sampling, labelling (2 PySCF workers)
#   SAMPLE_ONLY=1 bash examples/make_organic.sh  # stop before labelling
#   WORKERS=16 bash examples/make_organic.sh     # more workers; SCHEDULER=tcp://host:8786 uses a Dask cluster
#   PACK_ONLY=1 bash examples/make_organic.sh    # archive the new labels as parts in datasets/organic-pbe-def2svp
# The frames (datasets/organic-pbe-def2svp/frames) and the labels packed into its train/ and test/ are
# committed: a fresh checkout takes the frames from there and unpacks the labels, then resumes labelling.
# 600 molecules (480 / 60 / 60, split by molecule); one GFN2-xTB MD frame per molecule and temperature:
# training 300 and 600 K (960 frames), validation 450 K (60), test 300 and 600 K (120). Labels at
# PBE/def2-SVP with the forces' Coulomb term density-fitted (--gradient ri-j: about a quarter cheaper at these sizes, forces
# about 1 meV/A from exact; energy, F and dipole exact): about 30-40 s per frame and core, 9-11 core-hours. Then:
#   mlwfcalc train --config examples/train_organic.toml --compositions elements
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
D=${DATA:-work/organic}; M=$D/mols; mkdir -p $D
A=${ARCHIVE:-datasets/organic-pbe-def2svp}  # committed: the frames and the packed labels
sample() {  # split, temperatures, seed; the archived frames when there are (MD is chaotic: resampling on
            # another machine need not reproduce them to the 1e-6 A that the label keys hash)
  if [ -s $D/$1.xyz ] && [ -s $A/frames/$1.xyz ] && ! cmp -s $D/$1.xyz $A/frames/$1.xyz; then
    echo "$D/$1.xyz differs from the archived $A/frames/$1.xyz: the archived labels are for the latter; move $D away" >&2
    exit 2
  fi
  [ -s $D/$1.xyz ] || { [ -s $A/frames/$1.xyz ] && cp $A/frames/$1.xyz $D/$1.xyz; } || {
    [ -s $M/train.xyz ] || mlwfcalc molecules -o $M --n 600 --seed 0
    mlwfcalc sample $M/$1.xyz --every-frame -o $D/$1.xyz --temperature $2 --seed $3 --frames 1 --interval 40 -q; }
  [ -s $A/frames/$1.xyz ] || { mkdir -p $A/frames && cp $D/$1.xyz $A/frames/$1.xyz; }
}
sample train 300,600 11
sample val 450 12
sample test 300,600 13
[ "${SAMPLE_ONLY:-0}" = 1 ] && exit 0
if [ "${PACK_ONLY:-0}" = 1 ]; then
  for s in train test; do [ -s $D/organic-$s.db ] && mlwfcalc pack-labels $D/organic-$s.db -o $A/$s; done
  exit 0
fi
for s in train test; do compgen -G "$A/$s/part-*.safetensors" > /dev/null && mlwfcalc unpack-labels $A/$s -o $D/organic-$s.db; done
WHERE=(--gradient ri-j --workers "${WORKERS:-2}"); [ -n "${SCHEDULER:-}" ] && WHERE=(--gradient ri-j --scheduler "$SCHEDULER")
mlwfcalc label $D/val.xyz -o $D/organic-train.db "${WHERE[@]}" -q    # small sets first: a partial run
mlwfcalc label $D/test.xyz -o $D/organic-test.db "${WHERE[@]}" -q    # can already validate and test
# every training molecule once first (frames are molecule-major, 300 then 600 K: molecule 2k at 300 K,
# molecule 2k+1 at 600 K), then its other temperature: a partial run covers all 480 molecules
mlwfcalc label $D/train.xyz@::4 $D/train.xyz@3::4 -o $D/organic-train.db "${WHERE[@]}" -q
mlwfcalc label $D/train.xyz -o $D/organic-train.db "${WHERE[@]}" -q
