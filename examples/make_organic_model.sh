#!/usr/bin/env bash
# The organic CHNOF model from its labels, every measurement its card reports, resumable: each step is skipped
# when its output exists (training resumes from its checkpoint), so the script can be killed and rerun. Needs the
# archived labels in datasets/organic-pbe-def2svp (train/: the first set, with forces; train2/: round two, SCF-only)
# and the test set of examples/make_organic.sh (work/organic/organic-test.db: the 60 held-out molecules at 300 and
# 600 K). Outputs: work/organic/organic-pbe-def2svp-v3/ (model files, energy head, evaluation JSON and plots;
# MODEL=DIR to write elsewhere) and work/organic/report/*.txt (the tables for the card).
# Version 3 (issue 42): the network learns F - H0 (examples/train_organic_h0.toml), one cosine schedule from
# scratch on both label sets. Version 2 was built by this script as of commit bc97e14 (git show
# bc97e14:examples/make_organic_model.sh).
#   bash examples/make_organic_model.sh
set -euo pipefail
cd "$(dirname "$0")/.."
D=${DATA:-work/organic}; M=${MODEL:-work/organic/organic-pbe-def2svp-v3}; A=${ARCHIVE:-datasets/organic-pbe-def2svp}; OUT=$D/report; mkdir -p $OUT
R=work/runs/organic-v3h0   # the run directory of examples/train_organic_h0.toml
to() { local f=$1; shift; [ -s $f ] || { "$@" > $f.part 2>&1 && mv $f.part $f; }; }  # a killed step leaves no $f
finished() { [ -s $1/best/uncertainty.safetensors ] && python -c "import json, sys; m = json.load(open('$1/checkpoint.json'))
sys.exit(m['step'] < m['config']['max_steps'])"; }   # a run that reached its last step and fitted its domain
[ -s $D/organic-test.db ] || { echo "missing $D/organic-test.db: run examples/make_organic.sh" >&2; exit 2; }
# a copy of the labels the model is trained on (training refuses a database that grows under it): the parts of
# both archives, numbered in one directory (the SCF-only parts merge with the first set's, which carry the forces)
V=$D/organic-train-v3h0.db
if [ ! -s $V ]; then
  rm -rf $V.parts && mkdir -p $V.parts && k=0
  for part in $A/train/part-*.safetensors $A/train2/part-*.safetensors; do
    ln -s "$PWD/$part" $(printf "%s/part-%03d.safetensors" $V.parts $k); k=$((k + 1))
  done
  mlwfcalc unpack-labels $V.parts -o $V
fi
if [ ! -s $M/model.safetensors ]; then  # training also fits the domain (elements, sizes, distances) and the uncertainty
  finished $R || mlwfcalc train --config examples/train_organic_h0.toml --compositions elements 2>&1 | tee $OUT/train.txt
  mkdir -p $M && cp $R/best/* $M/ && cp $R/learning_curve.png $M/ && cp $R/log.csv $M/training_log.csv
fi
# the overlap subspace its orbitals are solved in, chosen on its own validation molecules (recorded in config.json)
[ -s $D/v3-val-molecules.json ] || python -c "import json, sys
json.dump(json.load(open('$M/config.json'))['training']['val_molecules'], sys.stdout)" > $D/v3-val-molecules.json
to $OUT/subspace.txt python benchmarks/overlap_subspace.py $M $V --molecules $D/v3-val-molecules.json --write
# no energy head (the second version's was no better than GFN2-xTB and had a false well along stretched C-H bonds):
# the energy route is chosen on validation frames with forces and recorded (the calculator's default mode)
to $OUT/routes_val.txt python benchmarks/energy_routes.py --model $M --dataset $V --molecules $D/v3-val-molecules.json \
  --n 12 --routes harris,variational,frozen,xtb --record
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
to $OUT/routes_test.txt python benchmarks/energy_routes.py --model $M --dataset $D/organic-test.db --n 30 \
  --routes harris,variational,frozen,xtb
python - $M <<'PY'   # the targets of issue 42 are not met: the model says so on every load
import json, sys
model = sys.argv[1]
config, card = json.load(open(f"{model}/config.json")), json.load(open(f"{model}/evaluation.json"))
config["preliminary"] = (f"held-out F {card['fock_mae_uha']:.0f} micro-Hartree, dipoles {card['dipole_mae_debye']:.2f} D "
                         "(targets 200, 0.1); no energy head: energies from the functional")
json.dump(config, open(f"{model}/config.json", "w"), indent=2)
PY
echo "done: tables in $OUT, model in $M (write its README card)"
