"""mlwfcalc: machine-learned Kohn-Sham Hamiltonians as an ASE calculator and a PySCF warm start.

    model = mlwfcalc.load_model("path/to/model", device="auto")
    result = model.predict(atoms)   # fock, overlap, mo_energy, mo_coeff, mo_occ, density_matrix, mol
"""

__version__ = "0.1.0"

from .validation import InputError  # noqa: E402


def load_model(name_or_path, device="auto", dtype=None):
    """Load a model directory or shipped model name; see :func:`mlwfcalc.predictor.load_model`."""
    from .predictor import load_model as _load

    return _load(name_or_path, device=device, dtype=dtype)


def list_models():
    """Shipped models (name, path, basis, functional, elements); see :func:`mlwfcalc.io.list_models`."""
    from .io import list_models as _list

    return _list()


__all__ = ["InputError", "__version__", "list_models", "load_model"]
