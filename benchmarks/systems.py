"""Shared pieces of the benchmark scripts: test molecules, random-weight models of the shipped architecture, and
PySCF itself as an ASE calculator (the reference that timings and optimisations are compared with).

Timing does not depend on the weights, so molecules without a trained model are timed with a randomly
initialised network (and random energy head) of the same size as a given trained model.
"""

import statistics
import time
import warnings

import torch
from ase import Atoms
from ase.build import molecule
from ase.calculators.calculator import Calculator, all_changes
from ase.units import Bohr, Hartree

from mlwfcalc.domain import OutOfDomainError
from mlwfcalc.energy import EnergyConfig, EnergyHead
from mlwfcalc.nn.model import HamiltonianModel, ModelConfig
from mlwfcalc.predictor import HamiltonianPredictor
from mlwfcalc.pyscf import reference_scf
from mlwfcalc.uncertainty import UncertainPredictionError

#: The reasons :func:`refusal` gives, in the order benchmarks count them.
REFUSALS = ("domain", "hard limit", "spurious orbitals")


def refusal(model: HamiltonianPredictor, atoms: Atoms) -> str | None:
    """Why the calculator's defaults refuse ``atoms`` in a functional route (one of :data:`REFUSALS`: outside the
    domain, past the uncertainty's hard limit, spurious occupied orbitals), or None when they serve it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prediction = model.predict(atoms)
    except UncertainPredictionError:
        return "hard limit"
    except OutOfDomainError:
        return "domain"
    return "spurious orbitals" if prediction.spurious_orbitals else None


def uracil() -> Atoms:
    """Uracil (12 atoms): one monomer of the s22 hydrogen-bonded uracil dimer (ASE's g2 set has no uracil)."""
    from ase.collections import s22

    return s22["Uracil_dimer_h-bonded"][:12]


def stacked_benzene_trimer() -> Atoms:
    """A 36-atom test system: three benzene rings stacked 3.5 A apart (C and H only)."""
    benzene = molecule("C6H6")
    stack = Atoms()
    for k in range(3):
        ring = benzene.copy()
        ring.translate((0, 0, 3.5 * k))
        stack += ring
    return stack


def random_model(like: HamiltonianPredictor, elements: list[int], dtype: torch.dtype = torch.float32,
                 device: str | torch.device = "cpu", architecture: dict | None = None) -> HamiltonianPredictor:
    """A random-weight predictor with ``like``'s architecture (or ``architecture``, a config's ``"model"``
    section) for ``elements``, with a random energy head of the shipped kind (term none, invariants).

    Also runs on the format-1 code (commit 38b4cb6, no ``mlwfcalc.model``), so benchmarks can time both.
    """
    torch.manual_seed(0)
    section = architecture or like.network.config.to_dict()
    network = HamiltonianModel(ModelConfig(**{**section, "elements": elements}), dtype=dtype).to(device).eval()
    atoms = molecule("H2O") if set(elements) <= {1, 8} else molecule("CH3CH2OH")
    try:
        from mlwfcalc.model import MLWFModel
        from mlwfcalc.theory import LevelOfTheory
    except ImportError:  # the format-1 code: HamiltonianPredictor(network, config, device, head)
        from mlwfcalc.io import model_config_dict

        config = {**model_config_dict(network, like.functional if like is not None else "pbe"),
                  "training": like.config.get("training", {}) if like is not None else {}}
        bare = HamiltonianPredictor(network, config, torch.device(device))
        width = _feature_width(bare, atoms)
        head = EnergyHead(EnergyConfig(term="none", features="invariants", elements=elements, num_scalars=width))
        return HamiltonianPredictor(network, config, torch.device(device), head.to(device))
    theory = like.theory if like is not None else LevelOfTheory()
    bare = HamiltonianPredictor(MLWFModel(network, theory), torch.device(device))
    width = _feature_width(bare, atoms)
    head = EnergyHead(EnergyConfig(term="none", features="invariants", elements=elements, num_scalars=width))
    return HamiltonianPredictor(MLWFModel(network, theory, head.to(device)), torch.device(device))


def _feature_width(bare: HamiltonianPredictor, atoms: Atoms) -> int:
    """Width of the invariant features the network gives (the format-1 code has no ``invariant_width``)."""
    with torch.no_grad():
        moles = [bare.make_mole(atoms)]
        positions = [torch.as_tensor(atoms.positions / Bohr)]
        nodes = bare.network.fock_and_nodes(bare.graph_batch([atoms], positions, moles))[1]
        return bare.network.invariants(nodes, "invariants").shape[1]


def median_ms(function, repeats: int, warmup: int = 1) -> float:
    """Median wall milliseconds of ``function()`` over ``repeats`` calls after ``warmup`` calls (CUDA synced)."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        function()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


class PySCFCalculator(Calculator):
    """PySCF at the model's level of theory through ASE (eV, eV/A): SCF from PySCF's default (minao) guess, then
    the nuclear gradient computed the way the model's labels were (``theory.nuclear_gradient``: exact or RI-J)."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, model: HamiltonianPredictor):
        super().__init__()
        self.model = model

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        mf = reference_scf(self.model, self.model.make_mole(self.atoms))
        energy = mf.kernel()
        if not mf.converged:
            raise RuntimeError(f"PySCF's SCF of {self.atoms.get_chemical_formula()} did not converge")
        self.results = {"energy": energy * Hartree,
                        "forces": -self.model.theory.nuclear_gradient(mf) * Hartree / Bohr}
