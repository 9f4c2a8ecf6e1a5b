"""How single-molecule inference time grows with molecule size, split into its parts (CPU by default).

    python benchmarks/inference_scaling.py [--threads 2] [--repeats 5] [--channels 16] [--layers 3]

For water, ethanol, uracil and larger molecules built with ase.build, a randomly initialised model
of the given size (same architecture as the shipped ones) is timed for: building the PySCF Mole and
its overlap S, the network forward pass (F), and the generalized eigensolve (orbitals and P). Prints a
Markdown table of median milliseconds over the repeats, after one warm-up call.
"""

import argparse

import torch
from ase.build import molecule
from ase.units import Bohr

from mlwfcalc.electronic import solve_orbitals
from mlwfcalc.nn import HamiltonianModel, ModelConfig, make_batch
from mlwfcalc.basis import BasisLayout
from systems import median_ms, stacked_benzene_trimer, uracil

MOLECULES = ["H2O", "CH3CH2OH", "C6H6", "trans-butane"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    systems = [(name, molecule(name)) for name in MOLECULES] + [("uracil", uracil()),
                                                                ("benzene trimer, stacked", stacked_benzene_trimer())]
    elements = sorted({int(z) for _, a in systems for z in a.numbers})
    torch.manual_seed(0)
    model = HamiltonianModel(ModelConfig(elements=elements, channels=args.channels, num_layers=args.layers),
                             dtype=dtype).eval()
    layout = BasisLayout("def2-svp", elements)
    print(f"random-weight model: channels {args.channels}, layers {args.layers}, {model.num_parameters():,} "
          f"parameters, {args.dtype}, {args.threads} threads, cutoff {model.config.cutoff} Bohr\n")
    print("| molecule | atoms | AOs | PySCF Mole + S (ms) | network F (ms) | eigensolve + P (ms) | total (ms) |")
    print("|---|---|---|---|---|---|---|")
    for name, atoms in systems:
        positions = atoms.positions / Bohr

        def integrals():
            mol = layout.make_mole(atoms.numbers, positions)
            return mol, torch.as_tensor(mol.intor("int1e_ovlp"))

        def network():
            batch = make_batch(layout, [torch.as_tensor(atoms.numbers)], [torch.as_tensor(positions, dtype=dtype)],
                               model.config.cutoff)
            with torch.no_grad():
                return model(batch)[0].to(torch.float64)

        mol, overlap = integrals()
        fock = network()
        t_int = median_ms(integrals, args.repeats)
        t_net = median_ms(network, args.repeats)
        t_eig = median_ms(lambda: solve_orbitals(fock, overlap, mol.nelectron).density_matrix(), args.repeats)
        print(f"| {name} | {len(atoms)} | {mol.nao} | {t_int:.1f} | {t_net:.1f} | {t_eig:.1f} | "
              f"{t_int + t_net + t_eig:.1f} |")


if __name__ == "__main__":
    main()
