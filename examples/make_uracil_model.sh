#!/usr/bin/env bash
# The uracil model (issue 17) from its labels, every measurement its card reports, resumable: each step
# is skipped when its output exists (training resumes from its checkpoint), so the script can be
# killed and rerun. Needs the labels of examples/make_uracil.sh (work/uracil/uracil-train.db and the
# test sets uracil-T300.db ... uracil-T900.db). Outputs: models/uracil-pbe-def2svp/ (model files,
# energy head, evaluation JSON and plots) and work/uracil/report/*.txt (the tables for the card).
#   bash examples/make_uracil_model.sh
set -euo pipefail
cd "$(dirname "$0")/.."
D=${DATA:-work/uracil}; M=models/uracil-pbe-def2svp; R=work/runs/uracil; R2=work/runs/uracil-stage2; OUT=$D/report
S=examples/structures/uracil.xyz; mkdir -p $OUT
to() { local f=$1; shift; [ -s $f ] || { "$@" > $f.part 2>&1 && mv $f.part $f; }; }  # a killed step leaves no $f
TESTS=(300=$D/uracil-T300.db 500=$D/uracil-T500.db 700=$D/uracil-T700.db 900=$D/uracil-T900.db)
for t in "${TESTS[@]}"; do [ -s "${t#*=}" ] || { echo "missing test set ${t#*=}: run examples/make_uracil.sh" >&2; exit 2; }; done
[ -s $D/uracil-train-run.db ] || cp $D/uracil-train.db $D/uracil-train-run.db   # training refuses a growing database
if [ ! -s $M/model.safetensors ]; then  # each stage also fits the domain and the uncertainty
  mlwfcalc train --config examples/train_uracil.toml 2>&1 | tee $OUT/train.txt
  # stage 2: a second cosine schedule from stage 1's weights (its validation error was still falling)
  mlwfcalc train --config examples/train_uracil.toml --init-from $R/best --lr 1e-3 -o $R2 2>&1 | tee $OUT/train-stage2.txt
  mkdir -p $M && cp $R2/best/* $M/ && cp $R2/learning_curve.png $M/ && cp $R2/log.csv $M/training_log.csv
  cp $R/learning_curve.png $M/learning_curve_stage1.png && cp $R/log.csv $M/training_log_stage1.csv
fi
[ -s $M/energy.safetensors ] || mlwfcalc train-energy $M $D/uracil-train-run.db --test $D/uracil-T500.db --epochs 400 \
  --threads 2 2>&1 | tee $OUT/energy.txt
[ -s $M/evaluation_temperatures.json ] || mlwfcalc evaluate $M "${TESTS[@]}" --scf 10 --trend $M/error_vs_temperature.png \
  --json $M/evaluation_temperatures.json --plot $M/parity_test.png 2>&1 | tee $OUT/evaluate.txt
[ -s $M/reference.json ] || python - $D/uracil-T500.db $M <<'PY'   # what tests/test_shipped_models.py checks
import json, sys
from ase.units import Hartree
from mlwfcalc.data import LabelDatabase
database, model = sys.argv[1:]
row = LabelDatabase(database).rows()[0]
card = json.load(open(f"{model}/evaluation_temperatures.json"))["sets"]["500"]["fock_mae_uha"]
json.dump({"description": "geometry 0 of the held-out 500 K test trajectory (seed 32) with its PySCF PBE/def2-SVP "
                          "Kohn-Sham matrix (grids 3, conv_tol 1e-10)",
           "numbers": row.numbers.tolist(), "positions_angstrom": row.positions.tolist(),
           "fock_hartree": row.data["fock"].tolist(), "energy_hartree": row.energy / Hartree,
           "card_fock_mae_uha": round(card, 1)}, open(f"{model}/reference.json", "w"))
PY
to $OUT/uncertainty.txt python benchmarks/uncertainty.py $M "${TESTS[@]}"
# NVE and the SCF benchmark side by side, one thread each
to $OUT/nve.txt python benchmarks/nve_drift.py --model $M --molecule $S --ps 10 --threads 1 &
to $OUT/scf.txt python benchmarks/scf_warm_start.py --model $M --frames $D/md500-s32.xyz --n 10 --md-steps 6 \
  --threads 1 --plot $M/scf_warm_start.png
wait
echo "done: tables in $OUT, model in $M (write its README card)"
