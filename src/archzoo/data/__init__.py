"""Data layer: dataset catalogue and sources, file-format readers, in-memory image datasets."""

from archzoo.data import catalog  # noqa: F401  (registers the datasets)
from archzoo.data.sources import DATASETS, DatasetSpec, locate

__all__ = ["DATASETS", "DatasetSpec", "locate"]
