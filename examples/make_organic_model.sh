#!/usr/bin/env bash
# The organic CHNOF model from its labels, every measurement its card reports, resumable: each step is skipped
# when its output exists (training resumes from its checkpoint), so the script can be killed and rerun. Needs the
# archived labels in datasets/organic-pbe-def2svp (train/: the first set, with forces; train2/: round two, SCF-only)
# and the test set of examples/make_organic.sh (work/organic/organic-test.db: the 60 held-out molecules at 300 and
# 600 K). Outputs: work/organic/organic-pbe-def2svp-v3/ and -v4/ (model files, evaluation JSON and plots) and
# work/organic/report-v3/, report-v4/ (the tables for the card).
# Version 3 (issue 42): the network learns F - H0 (examples/train_organic_h0.toml), one cosine schedule from
# scratch on the first set and round two's first 483 labels (parts 000-006). Version 4: version 3 fine-tuned on
# every label archived by then (round two's parts 000-009, 932 labels; examples/train_organic_v4.toml), validated on version 3's validation molecules; two arms
# (orbital-energy loss 0.5 and 0.1), the one with the lower validation F MAE kept. Version 2 was built by this
# script as of commit bc97e14 (git show bc97e14:examples/make_organic_model.sh).
#   bash examples/make_organic_model.sh          # ONLY=v4 bash ...: skip version 3's measurements
set -euo pipefail
cd "$(dirname "$0")/.."
D=${DATA:-work/organic}; A=${ARCHIVE:-datasets/organic-pbe-def2svp}
to() { local f=$1; shift; [ -s $f ] || { "$@" > $f.part 2>&1 && mv $f.part $f; }; }  # a killed step leaves no $f
trained() { [ -s $1/checkpoint.json ] && python -c "import json, sys; m = json.load(open('$1/checkpoint.json'))
sys.exit(m['step'] < m['config']['max_steps'])"; }   # a run that reached its last step
finished() { [ -s $1/best/uncertainty.safetensors ] && trained $1; }   # ... and fitted its domain
[ -s $D/organic-test.db ] || { echo "missing $D/organic-test.db: run examples/make_organic.sh" >&2; exit 2; }
# a copy of the labels a model is trained on (training refuses a database that grows under it): the parts of both
# archives, numbered in one directory (the SCF-only parts merge with the first set's, which carry the forces)
labels() {  # labels DB TRAIN2_PARTS...
  local db=$1; shift
  [ -s $db ] && return
  rm -rf $db.parts && mkdir -p $db.parts && local k=0
  for part in $A/train/part-*.safetensors "$@"; do
    ln -s "$PWD/$part" $(printf "%s/part-%03d.safetensors" $db.parts $k); k=$((k + 1))
  done
  mlwfcalc unpack-labels $db.parts -o $db
}
export_run() {  # export_run RUN MODEL: the best weights with their domain and uncertainty (fitted by train)
  mkdir -p $2 && cp $1/best/* $2/ && cp $1/learning_curve.png $2/ && cp $1/log.csv $2/training_log.csv
}
measure() {  # measure MODEL LABELS VAL_MOLECULES REPORT: everything the card reports
  local M=$1 V=$2 VAL=$3 OUT=$4; mkdir -p $OUT
  # the overlap subspace its orbitals are solved in, chosen on its own validation molecules (config.json)
  to $OUT/subspace.txt python benchmarks/overlap_subspace.py $M $V --molecules $VAL --write
  # no energy head (the second version's was no better than GFN2-xTB and had a false well along stretched C-H
  # bonds): the energy route is chosen on validation frames with forces and recorded (the calculator's default
  # mode), then the Fock-build settings of that route (grid level, RI-J) by their error against cost
  to $OUT/routes_val.txt python benchmarks/energy_routes.py --model $M --dataset $V --molecules $VAL \
    --n 12 --routes harris,variational,frozen,xtb --record
  to $OUT/functional_cost_val.txt python benchmarks/functional_cost.py --model $M --dataset $V --molecules $VAL \
    --n 8 --record
  # held-out molecules: all of them, with the SCF warm start on every sixth geometry (frames are
  # molecule-major, 300 then 600 K: 20 molecules at 300 K); then by size and by functional group
  [ -s $M/evaluation.json ] || mlwfcalc evaluate $M $D/organic-test.db --scf 20 --json $M/evaluation.json \
    --plot $M/parity_test.png -q 2>&1 | tee $OUT/evaluate.txt
  for by in size family; do
    [ -s $M/evaluation_$by.json ] || mlwfcalc evaluate $M $D/organic-test.db --group-by $by \
      --json $M/evaluation_$by.json --plot $OUT/parity-$by.png -q 2>&1 | tee $OUT/evaluate-$by.txt
  done
  [ -s $M/reference.json ] || python - $D/organic-test.db $M <<'PY'   # what tests/test_shipped_models.py checks
import json, sys
from ase.units import Hartree
from mlwfcalc.data import LabelDatabase
from mlwfcalc.domain import TrainingDomain
database, model = sys.argv[1:]
domain = TrainingDomain.from_dict(json.load(open(f"{model}/config.json"))["domain"])
k, row = next((k, r) for k, r in enumerate(LabelDatabase(database).rows())
              if not domain.violations(r.numbers, r.positions))   # the model refuses the others
card = json.load(open(f"{model}/evaluation.json"))["fock_mae_uha"]
json.dump({"description": f"geometry {k} of the held-out test molecules (the first inside the training domain) "
                          "with its PySCF PBE/def2-SVP Kohn-Sham matrix (grids 3, conv_tol 1e-10)",
           "numbers": row.numbers.tolist(), "positions_angstrom": row.positions.tolist(),
           "fock_hartree": row.data["fock"].tolist(), "energy_hartree": row.energy / Hartree,
           "card_fock_mae_uha": round(card, 1)}, open(f"{model}/reference.json", "w"))
PY
  # the recommended route at its recorded settings on held-out frames (mlwfcalc models and the card show these)
  to $OUT/routes_test.txt python benchmarks/energy_routes.py --model $M --dataset $D/organic-test.db --n 30 \
    --routes harris,variational,frozen,xtb --json $M/evaluation_routes.json
  to $OUT/functional_cost_test.txt python benchmarks/functional_cost.py --model $M --dataset $D/organic-test.db --n 8
  python - $M <<'PY'   # the targets of issue 42 are not met: the model says so on every load
import json, sys
model = sys.argv[1]
config, card = json.load(open(f"{model}/config.json")), json.load(open(f"{model}/evaluation.json"))
config["preliminary"] = (f"held-out F {card['fock_mae_uha']:.0f} micro-Hartree, dipoles {card['dipole_mae_debye']:.2f} D "
                         "(targets 200, 0.1); no energy head: energies from the functional")
json.dump(config, open(f"{model}/config.json", "w"), indent=2)
PY
}

# version 3
V3=$D/organic-train-v3h0.db; M3=$D/organic-pbe-def2svp-v3
labels $V3 $(for k in 000 001 002 003 004 005 006; do echo $A/train2/part-$k.safetensors; done)
if [ ! -s $M3/model.safetensors ]; then  # training also fits the domain (elements, sizes, distances) and the uncertainty
  finished work/runs/organic-v3h0 || mlwfcalc train --config examples/train_organic_h0.toml --compositions elements
  export_run work/runs/organic-v3h0 $M3
fi
[ -s $D/v3-val-molecules.json ] || python -c "import json, sys
json.dump(json.load(open('$M3/config.json'))['training']['val_molecules'], sys.stdout)" > $D/v3-val-molecules.json
[ "${ONLY:-}" = v4 ] || measure $M3 $V3 $D/v3-val-molecules.json $D/report-v3   # ONLY=v4: version 4's steps alone

# version 4: two arms from version 3's weights on every archived label, the lower validation F kept
V4=$D/organic-train-v4.db; M4=$D/organic-pbe-def2svp-v4
labels $V4 $(for k in 000 001 002 003 004 005 006 007 008 009; do echo $A/train2/part-$k.safetensors; done)
for arm in "organic-v4 0.5" "organic-v4-orb01 0.1"; do
  set -- $arm
  trained work/runs/$1 || mlwfcalc train --config examples/train_organic_v4.toml -o work/runs/$1 \
    --orbital-loss-weight $2 --compositions elements
done
if [ ! -s $M4/model.safetensors ]; then
  best=$(python -c "import json
runs = ['work/runs/organic-v4', 'work/runs/organic-v4-orb01']
print(min(runs, key=lambda r: json.load(open(r + '/checkpoint.json'))['best_val_mae']))")
  [ -s $best/best/uncertainty.safetensors ] || mlwfcalc fit-domain $best/best $V4 --compositions elements -q
  export_run $best $M4
fi
measure $M4 $V4 $D/v3-val-molecules.json $D/report-v4
echo "done: tables in $D/report-v3 and $D/report-v4, models in $M3 and $M4 (write the card of the one shipped)"
