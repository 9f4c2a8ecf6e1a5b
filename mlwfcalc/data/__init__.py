"""Sampling geometries, labelling them with PySCF, storing and loading the labelled set."""

from .database import LabelDatabase
from .dataset import LabelledDataset, Sample, split_indices
from .records import geometry_key

__all__ = ["LabelDatabase", "LabelledDataset", "Sample", "geometry_key", "split_indices"]
