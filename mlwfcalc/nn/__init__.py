"""Equivariant layers and the Hamiltonian model."""

from .graph import Batch, make_batch, pad_matrices
from .model import HamiltonianModel, ModelConfig

__all__ = ["Batch", "HamiltonianModel", "ModelConfig", "make_batch", "pad_matrices"]
