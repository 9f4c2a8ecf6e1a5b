#!/usr/bin/env bash
# A/B of the zeroth-step Hamiltonian (issue 42) on organic's first label set: without H0 (the network learns F),
# H0 as the baseline at grid level 0 with RI-J, H0 as the baseline and the network's input (zeroth_step_input), and
# (H0_GRID3=1) H0 as the baseline at grid level 3 with exact J. Same labels, split,
# seed, steps (examples/h0_ab/common.toml); resumable (each run directory checkpoints). Prints the validation F MAE
# of each run's best model, then evaluates each on the molecule-disjoint test set.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
OUT=${OUT:-work/h0ab}
[ -s work/organic/organic-train.db ] || mlwfcalc unpack-labels datasets/organic-pbe-def2svp/train -o work/organic/organic-train.db
[ -s work/organic/organic-test.db ] || mlwfcalc unpack-labels datasets/organic-pbe-def2svp/test -o work/organic/organic-test.db
variants=("fock" "fock-h0 0 true" "fock-h0 0 true input")
[ "${H0_GRID3:-0}" = 1 ] && variants+=("fock-h0 3 false")
for variant in "${variants[@]}"; do
  read -r target grid ri input <<< "$variant"
  name=$target${grid:+-grid$grid}${input:+-input}
  config=$OUT/$name.toml; mkdir -p $OUT
  cp examples/h0_ab/common.toml $config
  [ "$target" = fock-h0 ] && printf 'target = "fock-h0"\nzeroth_step = { grid_level = %s, ri_j = %s }\n' "$grid" "$ri" >> $config
  [ -n "$input" ] && printf 'zeroth_step_input = true\n' >> $config
  [ -s $OUT/$name/evaluation_test.json ] && continue   # this arm is done
  mlwfcalc train --config $config -o $OUT/$name -q
  mlwfcalc evaluate $OUT/$name/best test=work/organic/organic-test.db --json $OUT/$name/evaluation_test.json --plot "" -q
done
echo "| variant | validation F MAE, micro-Hartree | test F MAE | test occupied orbital energies | test dipole, D | s/step |"
echo "|---|---|---|---|---|---|"
for variant in "${variants[@]}"; do
  read -r target grid ri input <<< "$variant"; name=$target${grid:+-grid$grid}${input:+-input}
  python - "$OUT/$name" <<'PY'
import csv, json, sys
from pathlib import Path
run = Path(sys.argv[1])
rows = list(csv.DictReader(open(run / "log.csv")))
test = json.loads((run / "evaluation_test.json").read_text())
test = test.get("test", test)  # one dataset: its report
print(f"| {run.name} | {min(float(r['val_mae_uha']) for r in rows):.0f} | {test['fock_mae_uha']:.0f} | "
      f"{test['orbital_energy_mae_uha']:.0f} | {test['dipole_mae_debye']:.3f} | {float(rows[-1]['seconds_per_step']):.2f} |")
PY
done
