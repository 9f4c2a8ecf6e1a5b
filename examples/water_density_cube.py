"""Water's electron density and HOMO/LUMO from the shipped model as Gaussian cube files for a viewer.

    python examples/water_density_cube.py    # writes water_density.cube, water_homo.cube, water_lumo.cube

Open them in VMD, Avogadro, VESTA or ASE's GUI (`ase gui water_density.cube`).
"""

from ase.build import molecule

from mlwfcalc import MLWFCalculator

atoms = molecule("H2O")
atoms.calc = MLWFCalculator(model="water-pbe-def2svp")
print(f"dipole {atoms.get_dipole_moment()} e*A, Mulliken charges {atoms.get_charges()}")
homo, lumo = atoms.calc.get_homo_lumo()
print(f"HOMO {homo:.3f} eV, LUMO {lumo:.3f} eV")
atoms.calc.write_density_cube("water_density.cube")
atoms.calc.write_orbital_cube("homo", "water_homo.cube")
atoms.calc.write_orbital_cube("lumo", "water_lumo.cube")
print("wrote water_density.cube, water_homo.cube, water_lumo.cube")
