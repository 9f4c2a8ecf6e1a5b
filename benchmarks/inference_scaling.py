"""How single-molecule inference time grows with molecule size, split into its parts (CPU by default).

    python benchmarks/inference_scaling.py [--threads 2] [--repeats 5] [--channels 16] [--layers 3]

For water, ethanol, uracil and larger molecules built with ase.build, a randomly initialised model
of the given size (same architecture as the shipped ones) is timed for: building the PySCF Mole and
its overlap S, the network forward pass (F), the generalized eigensolve (orbitals and P), and the zeroth-step
Hamiltonian H0 that a ``target = "fock-h0"`` model adds to its network's output (the Kohn-Sham matrix of the atoms'
minao densities at grid level 0 with RI-J, the shipped setting; ``--h0-grid`` for another). Prints a Markdown table
of median milliseconds over the repeats, after one warm-up call.
"""

import argparse

import torch
from ase.build import molecule
from ase.units import Bohr

from mlwfcalc.baseline import ZerothStepSettings, zeroth_step_hamiltonian
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
    parser.add_argument("--h0-grid", type=int, default=0, help="H0's grid level (RI-J at 0, exact J above)")
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
    h0 = ZerothStepSettings(grid_level=args.h0_grid, ri_j=args.h0_grid == 0)
    print("| molecule | atoms | AOs | PySCF Mole + S (ms) | network F (ms) | eigensolve + P (ms) | total (ms) | "
          f"H0, grid {args.h0_grid}{' RI-J' if h0.ri_j else ''} (ms, a fock-h0 model adds it) | "
          "H0 with its derivative (ms, what forces through it add) |")
    print("|---|---|---|---|---|---|---|---|---|")
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
        t_h0 = median_ms(lambda: zeroth_step_hamiltonian(mol, torch.as_tensor(positions), h0), args.repeats)

        def h0_and_derivative():
            at = torch.tensor(positions, requires_grad=True)
            zeroth_step_hamiltonian(mol, at, h0).backward(fock)  # any (nao, nao) direction costs the same
            return at.grad

        t_h0_grad = median_ms(h0_and_derivative, args.repeats)
        print(f"| {name} | {len(atoms)} | {mol.nao} | {t_int:.1f} | {t_net:.1f} | {t_eig:.1f} | "
              f"{t_int + t_net + t_eig:.1f} | {t_h0:.0f} | {t_h0_grad:.0f} |")


if __name__ == "__main__":
    main()
