"""Predict water's Kohn-Sham matrix with the shipped model and derive what a chemist looks at.

    python examples/predict_water.py

Prints orbital energies, the HOMO-LUMO gap, the dipole and Mulliken/Lowdin charges, and writes the
electron density and the HOMO as Gaussian cube files (open them in VMD, Avogadro or VESTA).
"""

import torch
from ase.build import molecule
from ase.units import Bohr, Debye, Hartree

import mlwfcalc
from mlwfcalc.electronic import (dipole_moment, lowdin_charges, mulliken_charges, write_density_cube,
                                 write_orbital_cube)

model = mlwfcalc.load_model("water-pbe-def2svp", device="cpu")
atoms = molecule("H2O")
result = model.predict(atoms)
n_occ = int((result.mo_occ > 0).sum())
print(f"{model}\norbital energies (eV): {(result.mo_energy[:n_occ + 2] * Hartree).round(3)}")
print(f"HOMO-LUMO gap: {result.homo_lumo_gap * Hartree:.3f} eV")

density = torch.as_tensor(result.density_matrix)
overlap = torch.as_tensor(result.overlap)
dipole = dipole_moment(result.mol, density).numpy() * Bohr  # e*Angstrom
print(f"dipole: {dipole.round(4)} e*A = {(dipole ** 2).sum() ** 0.5 / Debye:.3f} Debye")
print(f"Mulliken charges: {mulliken_charges(result.mol, density, overlap).numpy().round(4)}")
print(f"Lowdin charges:   {lowdin_charges(result.mol, density, overlap).numpy().round(4)}")

write_density_cube(result.mol, result.density_matrix, "water_density.cube", spacing_bohr=0.2)  # viewer quality
write_orbital_cube(result.mol, result.mo_coeff, n_occ - 1, "water_homo.cube", spacing_bohr=0.2)
print("wrote water_density.cube and water_homo.cube")
