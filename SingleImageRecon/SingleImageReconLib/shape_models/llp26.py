"""Hip bone, sacrum and femur models from LLP26, the 26-subject pelvis and lower-limb model.

LLP26 ships in the PyPI package ``musculoskeletal-models`` (MPL-2.0, Auckland Bioengineering
Institute). Its PCA file ``LLP26_rigid.pc`` is a Python pickle; it is read here by an unpickler
that admits only numpy's array reconstruction and refuses every other global, so a tampered
file cannot run code. Facts used (checked against the package's mean meshes):

* ``mean`` and each column of ``modes`` hold 3225 nodes coordinate-major (all x, all y, all z),
  mm, in LPS: pelvis 1946 nodes, then the left femur 634, patella 74, tibia–fibula 571;
* ``projectedWeights`` (26 modes × 26 subjects) are each subject's mode scores, so subject j is
  ``mean + modes @ projectedWeights[:, j]``: the 26 real shapes, not only their statistics;
* the pelvis mesh falls into three closed surfaces: right hip bone, left hip bone, sacrum.

Each bone is rebuilt as its own model from the 26 subjects' nodes (rigid Procrustes, PCA).
The hip bone and femur are the left ones (LLP26 models the left limb; its right-side file is
that model mirrored); :meth:`.ShapeModel.mirrored` gives the right.
"""

from __future__ import annotations

import hashlib
import importlib
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from SyntheticDataGenLib.errors import XreconInputError

from .anatomical_landmarks import femoral_head, femur_landmarks, hip_landmarks, sacrum_landmarks
from .lagrange_mesh import lagrange_mesh_triangles
from .pca import pca
from .procrustes import generalized_procrustes
from .shape_model import ShapeModel

PACKAGE = "musculoskeletal-models==0.2.4"
LICENCE = "MPL-2.0 (musculoskeletal-models, Auckland Bioengineering Institute)"
_PCA_FILE = "shape_models/LLP26_rigid.pc"
_PELVIS_MESH = "atlas_meshes/pelvis_combined_cubic_flat.mesh"
_FEMUR_MESH = "atlas_meshes/femur_left_quartic_flat.mesh"
_PELVIS_NODES, _FEMUR_NODES = 1946, 634
_RAS_FROM_LPS = np.array([-1.0, -1.0, 1.0])
_NUMPY_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                  ("numpy", "ndarray"), ("numpy", "dtype")}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers of numpy arrays; any other global is refused."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _NUMPY_GLOBALS:
            raise pickle.UnpicklingError(f"refused global {module}.{name}: only numpy arrays are admitted")
        return getattr(importlib.import_module(module.replace("numpy.core", "numpy._core")), name)


def read_pca_pickle(path: Path) -> dict:
    """The dict of arrays in a GIAS2 ``.pc`` file, read without admitting any code."""
    try:
        with open(path, "rb") as stream:
            data = _ArraysOnlyUnpickler(stream).load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as error:
        raise XreconInputError(f"cannot read the PCA file {path}: {error}") from None
    if not isinstance(data, dict) or not {"mean", "modes", "projectedWeights"} <= set(data):
        raise XreconInputError(f"{path} is not a GIAS2 PCA file (needs mean, modes, projectedWeights)")
    return data


def package_folder() -> Path:
    """The installed ``musculoskeletal/models`` folder (``pip install musculoskeletal-models==0.2.4``)."""
    try:
        import musculoskeletal.models as models
    except ImportError:
        raise XreconInputError(f"building the LLP26 models needs `pip install {PACKAGE}`") from None
    return Path(models.__file__).parent


@dataclass(frozen=True)
class _Bone:
    name: str
    side: str
    mesh: str
    first_node: int
    component: int | None  # which closed piece of the mesh (pelvis: 0 right hip, 1 left hip, 2 sacrum)


_BONES = (_Bone("hip", "left", _PELVIS_MESH, 0, 1), _Bone("sacrum", "midline", _PELVIS_MESH, 0, 2),
          _Bone("femur", "left", _FEMUR_MESH, _PELVIS_NODES, None))
BONE_NAMES = tuple(bone.name for bone in _BONES)


def _components(node_count: int, triangles: np.ndarray) -> list[np.ndarray]:
    """Node ids of each edge-connected piece, ordered by their lowest node id."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]]])
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(node_count, node_count))
    _, label = connected_components(graph, directed=False)
    pieces = [np.flatnonzero(label == value) for value in np.unique(label)]
    return sorted(pieces, key=lambda nodes: nodes[0])


def subject_shapes(data: dict) -> np.ndarray:
    """(26, 3225, 3) every LLP26 subject's nodes, RAS mm (coordinate-major LPS in the file)."""
    mean, modes, scores = (np.asarray(data[key], dtype=np.float64) for key in ("mean", "modes", "projectedWeights"))
    flat = mean[None, :] + (modes @ scores).T
    return flat.reshape(len(flat), 3, -1).transpose(0, 2, 1) * _RAS_FROM_LPS


def build_llp26_model(name: str, folder: Path | None = None, max_modes: int = 20) -> ShapeModel:
    """The ``hip``, ``sacrum`` or ``femur`` model from the installed package (or ``folder``)."""
    bone = next((b for b in _BONES if b.name == name), None)
    if bone is None:
        raise XreconInputError(f"LLP26 has no bone {name!r}; it gives {', '.join(BONE_NAMES)}")
    folder = package_folder() if folder is None else Path(folder)
    pca_path = folder / _PCA_FILE
    shapes = subject_shapes(read_pca_pickle(pca_path))
    node_count, triangles = lagrange_mesh_triangles(folder / bone.mesh)
    nodes = np.arange(node_count)
    if bone.component is not None:
        nodes = _components(node_count, triangles)[bone.component]
        keep = np.isin(triangles, nodes).all(axis=1)
        renumber = np.full(node_count, -1)
        renumber[nodes] = np.arange(len(nodes))
        triangles = renumber[triangles[keep]]
    bone_shapes = shapes[:, bone.first_node + nodes]
    aligned = generalized_procrustes(bone_shapes)
    mean, modes, variances = pca(aligned, max_modes)
    names, weights = _landmarks(bone, shapes.mean(axis=0), nodes, triangles, folder)
    # LPS → RAS negates two axes, a rotation, so the mesh's outward order survives
    provenance = {
        "source": f"LLP26 ({PACKAGE} on PyPI): {_PCA_FILE}, {bone.mesh}",
        "source_sha256": hashlib.sha256(pca_path.read_bytes()).hexdigest(),
        "licence": LICENCE,
        "subjects": int(len(shapes)),
        "built_by": f"xrecon ssm build {name}",
        "method": "each subject's nodes from the PCA scores; rigid generalised Procrustes; PCA (sample covariance)",
        "modes": int(len(variances)),
        "total_sd_mm": float(np.sqrt(variances.sum() / len(mean))),
    }
    return ShapeModel(name, bone.side, mean, modes, variances, triangles.astype(np.int64), names, weights, provenance,
                      aligned)


def _landmarks(bone: _Bone, joint_mean: np.ndarray, nodes: np.ndarray, triangles: np.ndarray, folder: Path):
    """Landmark weights of one bone, defined on LLP26's mean in its joint frame, where the hip
    bone and femur still meet: the acetabulum is found around the femoral head. Affine weights
    carry over to the bone's own (Procrustes) frame unchanged."""
    vertices = joint_mean[bone.first_node + nodes]
    if bone.name == "femur":
        return femur_landmarks(vertices, bone.side)
    if bone.name == "sacrum":
        return sacrum_landmarks(vertices)
    femur = joint_mean[_PELVIS_NODES:_PELVIS_NODES + _FEMUR_NODES]
    _, head_centre, radius = femoral_head(femur, bone.side)
    return hip_landmarks(vertices, triangles, bone.side, head_centre, radius)
