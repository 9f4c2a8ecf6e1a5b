"""Time to import mlwfcalc and to load each shipped model (CPU), fresh interpreter per model.

    python benchmarks/load_time.py [--models water-pbe-def2svp ethanol-pbe-def2svp] [--repeats 3]

Each measurement runs in a new Python process, so nothing is cached between them: ``libraries`` is
importing torch, e3nn, PySCF and ASE (what any command pays first), ``load`` is ``import mlwfcalc``
plus ``mlwfcalc.load_model(name, device="cpu")`` after that (network build, Clebsch-Gordan tables,
weights and checks).
Prints a Markdown table of medians.
"""

import argparse
import json
import statistics
import subprocess
import sys

PROBE = """
import json, sys, time
start = time.perf_counter()
import ase, e3nn.o3, pyscf.dft, pyscf.gto, torch
libraries = time.perf_counter()
import mlwfcalc
mlwfcalc.load_model(sys.argv[1], device="cpu")
print(json.dumps({"import": libraries - start, "load": time.perf_counter() - libraries}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["water-pbe-def2svp", "ethanol-pbe-def2svp"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("| model | import torch, e3nn, PySCF, ASE: s | import mlwfcalc + load_model: s |")
    print("|---|---|---|")
    for name in args.models:
        runs = []
        for _ in range(args.repeats):
            out = subprocess.run([sys.executable, "-c", PROBE, name], capture_output=True, text=True)
            if out.returncode != 0:
                runs = None
                print(f"| {name} | failed: {out.stderr.strip().splitlines()[-1][:120]} | |")
                break
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        if runs:
            print(f"| {name} | {statistics.median(r['import'] for r in runs):.2f} | "
                  f"{statistics.median(r['load'] for r in runs):.2f} |", flush=True)


if __name__ == "__main__":
    main()
