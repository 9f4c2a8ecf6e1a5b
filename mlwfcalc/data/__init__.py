"""Sampling geometries, labelling them with PySCF, storing and loading the labelled set."""

from .database import LabelDatabase, geometry_key
from .dataset import LabelledDataset, Sample, split_indices

__all__ = ["LabelDatabase", "LabelledDataset", "Sample", "geometry_key", "split_indices"]
