"""A statistical shape model of one bone type: a mean surface, PCA modes, and named landmarks.

Shapes are vertex arrays in corresponding order, RAS millimetres in the model's own anatomical
frame (the bone centred at the origin, axes as a patient lying supine in RAS). An instance is
``mean + Σ_k b_k · modes[k]``; with ``b_k ~ N(0, variances[k])`` it is a sample of the model.
Landmarks are fixed linear combinations of vertices (one vertex for a surface point, a group's
mean for a centre), so they move with the shape exactly.

Models are stored as ``.npz`` files of plain arrays plus one JSON string, read with
``allow_pickle=False``: a model file can never run code.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from SyntheticDataGenLib.atomic_io import atomic_path
from SyntheticDataGenLib.errors import XreconInputError

SHAPE_MODEL_FORMAT = "xrecon-shape-model/1"
_ARRAYS = ("mean_mm", "modes", "variances_mm2", "triangles", "landmark_weights", "instances_mm")


@dataclass(frozen=True)
class ShapeModel:
    """One bone type's shape model.

    Attributes:
        name: the bone type (``hip``, ``femur``, ``sacrum``, ``vertebra``).
        side: ``left``, ``right`` or ``midline``: which side's bone the arrays describe.
        mean_mm: (N, 3) mean vertex positions, RAS mm, centred at the origin.
        modes: (K, N, 3) orthonormal deformation modes (as 3N-vectors), largest variance first.
        variances_mm2: (K,) the variance of each mode's coefficient, mm².
        triangles: (T, 3) vertex ids; the surface is closed and ordered outward.
        landmark_names: L anatomical landmark names.
        landmark_weights: (L, N) each landmark as a weighted mean of vertices (rows sum to 1).
        provenance: source, licence, how it was built, and its build figures.
        instances_mm: (S, N, 3) the aligned training shapes it was built from (for leave-one-out
            checks and rebuilding), or an empty array.
    """

    name: str
    side: str
    mean_mm: np.ndarray
    modes: np.ndarray
    variances_mm2: np.ndarray
    triangles: np.ndarray
    landmark_names: tuple[str, ...] = ()
    landmark_weights: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    provenance: dict = field(default_factory=dict)
    instances_mm: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 3)))

    @property
    def vertex_count(self) -> int:
        return int(self.mean_mm.shape[0])

    @property
    def mode_count(self) -> int:
        return int(self.modes.shape[0])

    @property
    def standard_deviations_mm(self) -> np.ndarray:
        """(K,) one standard deviation of each mode, mm (over the 3N-vector)."""
        return np.sqrt(np.maximum(self.variances_mm2, 0.0))

    def instance(self, coefficients_mm: np.ndarray | None = None) -> np.ndarray:
        """(N, 3) vertices of the shape with mode coefficients ``coefficients_mm`` (K or fewer; None: the mean)."""
        if coefficients_mm is None:
            return self.mean_mm.copy()
        b = np.asarray(coefficients_mm, dtype=np.float64)
        return self.mean_mm + np.tensordot(b, self.modes[:b.shape[0]], axes=1)

    def coefficients(self, vertices_mm: np.ndarray, mode_count: int | None = None) -> np.ndarray:
        """(K,) least-squares mode coefficients of corresponding vertices in the model frame."""
        k = self.mode_count if mode_count is None else mode_count
        offset = (np.asarray(vertices_mm, dtype=np.float64) - self.mean_mm).ravel()
        return self.modes[:k].reshape(k, -1) @ offset

    def sample(self, rng: np.random.Generator, count: int = 1, limit_sd: float = 3.0) -> np.ndarray:
        """(count, N, 3) random shapes: coefficients drawn from the model, each cut at ``limit_sd`` SDs."""
        z = np.clip(rng.standard_normal((count, self.mode_count)), -limit_sd, limit_sd)
        return np.stack([self.instance(row * self.standard_deviations_mm) for row in z])

    def landmarks(self, vertices_mm: np.ndarray) -> np.ndarray:
        """(L, 3) landmark positions of a shape given as (N, 3) vertices (any pose)."""
        return self.landmark_weights @ np.asarray(vertices_mm, dtype=np.float64)

    def mirrored(self) -> "ShapeModel":
        """The same model for the other side: x negated (RAS left ↔ right), triangles turned to stay outward."""
        flip = np.array([-1.0, 1.0, 1.0])
        other = {"left": "right", "right": "left"}.get(self.side, self.side)
        return ShapeModel(self.name, other, self.mean_mm * flip, self.modes * flip, self.variances_mm2,
                          self.triangles[:, ::-1].copy(), self.landmark_names, self.landmark_weights,
                          {**self.provenance, "mirrored_from": self.side}, self.instances_mm * flip)

    def for_side(self, side: str) -> "ShapeModel":
        """This model for ``side`` (``left``/``right``/``midline``), mirrored when it describes the other one."""
        return self if side in (self.side, "midline") or self.side == "midline" else self.mirrored()

    def with_landmarks(self, names: tuple[str, ...], weights: np.ndarray) -> "ShapeModel":
        return ShapeModel(self.name, self.side, self.mean_mm, self.modes, self.variances_mm2, self.triangles,
                          tuple(names), np.asarray(weights, dtype=np.float64), self.provenance, self.instances_mm)


def save_shape_model(model: ShapeModel, path: str | os.PathLike) -> None:
    """Write a model as a compressed ``.npz`` of arrays and one JSON string, atomically."""
    header = {"format": SHAPE_MODEL_FORMAT, "name": model.name, "side": model.side,
              "landmark_names": list(model.landmark_names), "provenance": model.provenance}
    arrays = {"mean_mm": model.mean_mm.astype(np.float64), "modes": model.modes.astype(np.float32),
              "variances_mm2": model.variances_mm2.astype(np.float64), "triangles": model.triangles.astype(np.int32),
              "landmark_weights": model.landmark_weights.astype(np.float32),
              "instances_mm": model.instances_mm.astype(np.float32)}
    with atomic_path(Path(path)) as temporary:
        with open(temporary, "wb") as stream:
            np.savez_compressed(stream, header=np.array(json.dumps(header)), **arrays)


def load_shape_model(path: str | os.PathLike) -> ShapeModel:
    """Read a model written by :func:`save_shape_model` (no pickles: ``allow_pickle=False``).

    Raises:
        XreconInputError: missing or unreadable file, another format, or arrays that do not fit together.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            arrays = {name: data[name] for name in _ARRAYS}
    except FileNotFoundError:
        raise XreconInputError(f"shape model not found: {path}") from None
    except IsADirectoryError:
        raise XreconInputError(f"shape model {path} is a folder, expected a .npz file") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as error:
        raise XreconInputError(f"{path} is not an xrecon shape model ({type(error).__name__}: {error})") from None
    if not isinstance(header, dict) or header.get("format") != SHAPE_MODEL_FORMAT:
        raise XreconInputError(f"{path}: format {header.get('format') if isinstance(header, dict) else None!r}, "
                               f"expected {SHAPE_MODEL_FORMAT}")
    mean, modes, triangles = arrays["mean_mm"], arrays["modes"].astype(np.float64), arrays["triangles"].astype(np.int64)
    n = mean.shape[0] if mean.ndim == 2 else -1
    if (mean.shape != (n, 3) or modes.ndim != 3 or modes.shape[1:] != (n, 3)
            or arrays["variances_mm2"].shape != (modes.shape[0],) or triangles.ndim != 2 or triangles.shape[1] != 3
            or (triangles.size and (triangles.min() < 0 or triangles.max() >= n))
            or not all(np.isfinite(a).all() for a in (mean, modes, arrays["variances_mm2"]))):
        raise XreconInputError(f"{path}: the shape model's arrays do not fit together")
    instances = arrays["instances_mm"].astype(np.float64)
    if instances.size and (instances.ndim != 3 or instances.shape[1:] != (n, 3)):
        raise XreconInputError(f"{path}: training shapes of shape {instances.shape} for {n} vertices")
    names = tuple(header.get("landmark_names", ()))
    weights = arrays["landmark_weights"].astype(np.float64)
    if names and weights.shape != (len(names), n):
        raise XreconInputError(f"{path}: {len(names)} landmark names but landmark weights of shape {weights.shape}")
    return ShapeModel(str(header["name"]), str(header["side"]), mean, modes, arrays["variances_mm2"], triangles,
                      names, weights if names else np.zeros((0, n)), header.get("provenance", {}),
                      instances if instances.size else np.zeros((0, n, 3)))
