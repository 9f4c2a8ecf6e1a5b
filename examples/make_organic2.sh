#!/usr/bin/env bash
# Round two of the organic data (issue 42), resumable: 3,000 new molecules of the "realistic" composition
# (fewer amines and imines, more esters, acids and aromatics than the first set), none of them a molecule of
# the first set's training, validation or test frames; sampled and labelled in 12 chunks (every 12th molecule
# of the size-sorted list, so each chunk spans all sizes and a partial run is representative).
#   bash examples/make_organic2.sh              # enumerate, sample (one background process), label as chunks land
#   SAMPLE_ONLY=1 bash examples/make_organic2.sh # sampling only
#   PACK_ONLY=1 bash examples/make_organic2.sh   # archive the new labels as a new part in datasets/.../train2
#   WORKERS=16 bash ...; SCHEDULER=tcp://host:8786 bash ...  # more workers, or a Dask cluster
# Each molecule is relaxed and run at 300 and 600 K (GFN2-xTB Langevin MD, one frame each); the first pass labels one
# frame per molecule (alternating 300 / 600 K), the second pass the other. Training labels only: SCF without the
# nuclear gradient (--no-forces, the F loss needs none), warm-started from the shipped organic model; the existing
# validation and test sets (with forces) stay the yardstick. Frames are committed in datasets/organic-pbe-def2svp/
# frames/train2-KK.xyz, labels in datasets/organic-pbe-def2svp/train2/.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
D=${DATA:-work/organic2}; M=$D/mols; mkdir -p $D
A=${ARCHIVE:-datasets/organic-pbe-def2svp}
CHUNKS=12
DB=$D/organic2-train.db
if [ "${PACK_ONLY:-0}" = 1 ]; then
  [ -s $DB ] && mlwfcalc pack-labels $DB -o $A/train2
  exit 0
fi
[ -s $M/train.xyz ] || mlwfcalc molecules -o $M --n 3000 --composition realistic --split 1,0,0 --seed 101 \
  --exclude $A/frames/train.xyz $A/frames/val.xyz $A/frames/test.xyz
chunk() { printf "%s/train2-%02d.xyz" "$1" "$2"; }
sample_all() {
  for ((k = 0; k < CHUNKS; k++)); do
    local here; here=$(chunk $D $k); local kept; kept=$(chunk $A/frames $k)
    if [ -s $here ] && [ -s $kept ] && ! cmp -s $here $kept; then
      echo "$here differs from the archived $kept: the archived labels are for the latter; move $D away" >&2; exit 2
    fi
    [ -s $here ] || { [ -s $kept ] && cp $kept $here; } || \
      mlwfcalc sample "$M/train.xyz@$k::$CHUNKS" --every-frame -o $here --temperature 300,600 --seed $((200 + k)) \
        --frames 1 --interval 40 -q
    [ -s $kept ] || cp $here $kept
  done
}
if [ "${SAMPLE_ONLY:-0}" = 1 ]; then sample_all; exit 0; fi
compgen -G "$A/train2/part-*.safetensors" > /dev/null && mlwfcalc unpack-labels $A/train2 -o $DB
sample_all & SAMPLER=$!
trap 'kill $SAMPLER 2>/dev/null' EXIT
WHERE=(--no-forces --guess organic-pbe-def2svp --workers "${WORKERS:-2}")
[ -n "${SCHEDULER:-}" ] && WHERE=(--no-forces --guess organic-pbe-def2svp --scheduler "$SCHEDULER")
wait_for() { while [ ! -s "$1" ]; do kill -0 $SAMPLER 2>/dev/null || { [ -s "$1" ] || exit 2; }; sleep 30; done; }
for pass in first second; do
  for ((k = 0; k < CHUNKS; k++)); do
    f=$(chunk $D $k); wait_for $f
    if [ $pass = first ]; then mlwfcalc label "$f@::4" "$f@3::4" -o $DB "${WHERE[@]}" -q
    else mlwfcalc label "$f" -o $DB "${WHERE[@]}" -q; fi
  done
done
