"""Precomputed panorama feature stores: one (36, D) float32 array per (scan, viewpoint), row `ix` = view `ix`.

- `TSVFeatureStore(path)`: the community's ResNet-152 file (`ResNet-152-imagenet.tsv`): tab-separated columns
  `scanId, viewpointId, image_w, image_h, vfov, features`, `features` = base64 of 36×2048 float32 (row-major); the
  whole file is read into memory, as the originals do.
- `HDF5FeatureStore(path)`: an HDF5 file with one dataset per viewpoint named `<scan>_<viewpoint>`, shape (36, D);
  read lazily (needs `h5py`: `pip install hf-dgm[vln]`).
- `None`: geometry-only; the environment then gives angle features alone.

`load_feature_store(path_or_none)` picks the store from the suffix (`.tsv`, `.h5`/`.hdf5`).
Every store has `get(scan, viewpoint) -> np.ndarray`, `feature_size`, and raises `ValueError` naming a missing key.
"""

from __future__ import annotations

import base64
import csv
import os
import sys
from pathlib import Path

import numpy as np


TSV_FIELDNAMES = ["scanId", "viewpointId", "image_w", "image_h", "vfov", "features"]
NUM_VIEWS = 36


def feature_key(scan: str, viewpoint: str) -> str:
    return f"{scan}_{viewpoint}"


class TSVFeatureStore:
    def __init__(self, path: str | os.PathLike, feature_size: int = 2048):
        self.path = Path(path)
        if not self.path.is_file():
            raise ValueError(f"feature file not found: {self.path}")
        self.feature_size = int(feature_size)
        self._features: dict[str, np.ndarray] = {}
        csv.field_size_limit(sys.maxsize)
        with open(self.path, newline="") as f:
            reader = csv.DictReader(f, delimiter="\t", fieldnames=TSV_FIELDNAMES)
            for line, row in enumerate(reader, start=1):
                try:
                    flat = np.frombuffer(base64.b64decode(row["features"]), dtype=np.float32)
                except (TypeError, ValueError) as err:
                    raise ValueError(f"{self.path}:{line}: features are not base64 float32 ({err})") from None
                if flat.size != NUM_VIEWS * self.feature_size:
                    raise ValueError(
                        f"{self.path}:{line}: {flat.size} floats for {row['scanId']}_{row['viewpointId']}, "
                        f"expected {NUM_VIEWS}×{self.feature_size}"
                    )
                self._features[feature_key(row["scanId"], row["viewpointId"])] = flat.reshape(NUM_VIEWS, self.feature_size)

    def __len__(self) -> int:
        return len(self._features)

    def __contains__(self, key: tuple[str, str]) -> bool:
        return feature_key(*key) in self._features

    def get(self, scan: str, viewpoint: str) -> np.ndarray:
        try:
            return self._features[feature_key(scan, viewpoint)]
        except KeyError:
            raise ValueError(f"no features for scan {scan!r} viewpoint {viewpoint!r} in {self.path}") from None


class HDF5FeatureStore:
    def __init__(self, path: str | os.PathLike):
        try:
            import h5py
        except ImportError as err:
            raise ImportError("HDF5 feature stores need h5py: pip install 'hf-dgm[vln]'") from err
        self.path = Path(path)
        if not self.path.is_file():
            raise ValueError(f"feature file not found: {self.path}")
        self._file = h5py.File(self.path, "r")
        self._cache: dict[str, np.ndarray] = {}
        first = next(iter(self._file.keys()), None)
        if first is None:
            raise ValueError(f"{self.path} holds no feature datasets")
        shape = self._file[first].shape
        if len(shape) != 2 or shape[0] != NUM_VIEWS:
            raise ValueError(f"{self.path}: dataset {first!r} has shape {shape}, expected ({NUM_VIEWS}, D)")
        self.feature_size = int(shape[1])

    def __len__(self) -> int:
        return len(self._file)

    def __contains__(self, key: tuple[str, str]) -> bool:
        return feature_key(*key) in self._file

    def get(self, scan: str, viewpoint: str) -> np.ndarray:
        key = feature_key(scan, viewpoint)
        if key not in self._cache:
            if key not in self._file:
                raise ValueError(f"no features for scan {scan!r} viewpoint {viewpoint!r} in {self.path}")
            self._cache[key] = np.asarray(self._file[key][...], dtype=np.float32)
        return self._cache[key]

    def close(self) -> None:
        self._file.close()


def load_feature_store(path: str | os.PathLike | None):
    """A feature store from a path (`.tsv` -> TSV, `.h5`/`.hdf5` -> HDF5), `None` for geometry-only, or an object
    that already has `get(scan, viewpoint)` and `feature_size` (returned as is)."""
    if path is None:
        return None
    if hasattr(path, "get") and hasattr(path, "feature_size"):
        return path
    suffix = Path(path).suffix.lower()
    if suffix == ".tsv":
        return TSVFeatureStore(path)
    if suffix in (".h5", ".hdf5"):
        return HDF5FeatureStore(path)
    raise ValueError(f"unknown feature file type {suffix!r} for {path}: use a .tsv (base64 ResNet-152) or .h5 file")


def write_tsv_features(path: str | os.PathLike, features: dict[tuple[str, str], np.ndarray], image_w=640, image_h=480, vfov=60):
    """Write features `{(scan, viewpoint): (36, D) array}` in the TSV layout (used by tests and converters)."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, delimiter="\t", fieldnames=TSV_FIELDNAMES)
        for (scan, viewpoint), array in features.items():
            array = np.ascontiguousarray(array, dtype=np.float32)
            writer.writerow(
                {
                    "scanId": scan,
                    "viewpointId": viewpoint,
                    "image_w": image_w,
                    "image_h": image_h,
                    "vfov": vfov,
                    "features": base64.b64encode(array.tobytes()).decode("ascii"),
                }
            )
