"""mlwfcalc: machine-learned Kohn-Sham Hamiltonians as an ASE calculator and a PySCF warm start."""

__version__ = "0.1.0"

from .validation import InputError  # noqa: E402

__all__ = ["InputError", "__version__"]
