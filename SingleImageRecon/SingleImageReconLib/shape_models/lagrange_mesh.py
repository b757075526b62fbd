"""Triangle surfaces from GIAS2 Lagrange meshes (``.mesh`` topology + ``.geof`` node positions).

The LLP26 shape model (``musculoskeletal-models`` on PyPI) describes its bones as 2D Lagrange
meshes: quadrilateral elements of n×m nodes (``quad44``, ``quad54``, ``quad55``) and triangular
elements of order n (``tri10``, ``tri15``). Each element's node grid is cut into triangles, so
the surface passes through every node; nodes that the mesh's ``connectivity`` shares between
elements become one vertex, which makes the surface watertight where the elements meet.

Global node numbers follow the order in which elements and their local nodes first appear,
which reproduces the node order of the ``.geof`` files and of the PCA model.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from SyntheticDataGenLib.errors import XreconInputError

_QUAD = re.compile(r"^quad(\d)(\d)$")
_TRI = re.compile(r"^tri(\d+)$")
_TRIANGLE_ORDER = {3: 1, 6: 2, 10: 3, 15: 4}  # nodes of a simplex element → its polynomial order


def _element_triangles(kind: str) -> tuple[int, np.ndarray]:
    """(node count, (T, 3) local triangles) of one element type, counter-clockwise in its ξ plane."""
    quad = _QUAD.match(kind)
    if quad:  # GIAS2 orders quad nodes with ξ1 fastest: nodes (i, j) at j·n1 + i
        n1, n2 = int(quad.group(1)), int(quad.group(2))
        triangles = []
        for j in range(n2 - 1):
            for i in range(n1 - 1):
                a, b, c, d = j * n1 + i, j * n1 + i + 1, (j + 1) * n1 + i, (j + 1) * n1 + i + 1
                triangles += [(a, b, d), (a, d, c)]
        return n1 * n2, np.array(triangles)
    tri = _TRI.match(kind)
    if tri and int(tri.group(1)) in _TRIANGLE_ORDER:  # rows of order+1, order, …, 1 nodes
        order = _TRIANGLE_ORDER[int(tri.group(1))]
        starts = np.cumsum([0] + [order + 1 - r for r in range(order + 1)])
        triangles = []
        for r in range(order):
            for c in range(order - r):
                here, above = starts[r] + c, starts[r + 1] + c
                triangles.append((here, here + 1, above))
                if c < order - r - 1:
                    triangles.append((here + 1, above + 1, above))
        return int(starts[-1]), np.array(triangles)
    raise XreconInputError(f"unsupported Lagrange element type {kind!r}")


def read_geof_nodes(path: Path) -> np.ndarray:
    """(N, 3) node positions of a GIAS2 ``.geof`` file, in its node order (mm)."""
    fields = json.loads(Path(path).read_text())["field_parameters"]
    return np.array([[float(fields[key][f"dim {axis}"]) for axis in range(3)] for key in sorted(fields)])


def lagrange_mesh_triangles(mesh_path: Path) -> tuple[int, np.ndarray]:
    """(node count, (T, 3) triangles over global node numbers) of a GIAS2 ``.mesh`` file."""
    mesh = json.loads(Path(mesh_path).read_text())
    connectivity: dict[str, str] = mesh["connectivity"]
    global_of: dict[str, int] = {}
    node_count = 0
    triangles = []
    for element in range(int(mesh["element_counter"])):
        kind = mesh["elements"][str(element)].split()[1]
        count, local = _element_triangles(kind)
        ids = np.empty(count, dtype=np.int64)
        for node in range(count):
            key = f"{element}_{node}"
            if key not in global_of:
                global_of[key] = node_count
                node_count += 1
                for shared in connectivity.get(key, "").split():
                    global_of[shared] = global_of[key]
            ids[node] = global_of[key]
        triangles.append(ids[local])
    if node_count != int(mesh["number_of_points"]):
        raise XreconInputError(f"{mesh_path}: assembled {node_count} nodes, the file says {mesh['number_of_points']}")
    return node_count, np.concatenate(triangles)
