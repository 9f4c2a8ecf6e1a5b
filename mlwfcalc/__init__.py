"""mlwfcalc: machine-learned Kohn-Sham Hamiltonians as an ASE calculator and a PySCF warm start.

    model = mlwfcalc.load_model("auto", atoms=atoms)   # the shipped model covering atoms, or a name or path
    result = model.predict(atoms)   # fock, overlap, mo_energy, mo_coeff, mo_occ, density_matrix, mol
    atoms.calc = mlwfcalc.MLWFCalculator()            # ASE; model="auto": chosen at the first calculation
    mlwfcalc.pyscf.warm_start(mf)                     # PySCF; model="auto" too
"""

__version__ = "0.1.0"

from .validation import InputError  # noqa: E402
from .domain import OutOfDomainError, OutOfDomainWarning  # noqa: E402


def __getattr__(name):
    """``MLWFCalculator``, ``SpuriousOrbitalWarning`` and the ``pyscf`` front end are imported on first use
    (they pull in torch and PySCF)."""
    if name == "MLWFCalculator":
        from .calculator import MLWFCalculator

        return MLWFCalculator
    if name == "SpuriousOrbitalWarning":
        from .electronic import SpuriousOrbitalWarning

        return SpuriousOrbitalWarning
    if name == "pyscf":
        import importlib

        return importlib.import_module(".pyscf", __name__)
    raise AttributeError(f"module 'mlwfcalc' has no attribute {name!r}")


def load_model(name_or_path="auto", device="auto", dtype=None, compile=False, overlap_subspace=None, atoms=None):
    """Load a model directory or shipped model name, or with ``"auto"`` (default) the shipped model that covers
    ``atoms``; see :func:`mlwfcalc.predictor.load_model`."""
    from .predictor import load_model as _load

    return _load(name_or_path, device=device, dtype=dtype, compile=compile, overlap_subspace=overlap_subspace,
                 atoms=atoms)


def list_models():
    """Shipped models (name, path, basis, functional, elements); see :func:`mlwfcalc.io.list_models`."""
    from .io import list_models as _list

    return _list()


__all__ = ["InputError", "MLWFCalculator", "OutOfDomainError", "OutOfDomainWarning", "SpuriousOrbitalWarning",
           "__version__", "list_models", "load_model"]
