"""Named structures (bones) on a CT grid: label map + ``id,structure`` table, or Slicer ``.seg.nrrd``.

A :class:`Segmentation` holds one or more integer *layers* on one voxel grid (a label map is
one layer; a ``.seg.nrrd`` with overlapping segments has several) and maps each structure name
to a (layer, label value) pair.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .ct_io import grid_summary, ijk_to_ras, read_image, same_grid
from ..errors import XreconInputError


@dataclass
class Segmentation:
    """Structures on one voxel grid.

    Attributes:
        layers: integer label images, all on the same grid.
        structures: structure name -> (layer index, label value).
    """

    layers: list[sitk.Image]
    structures: dict[str, tuple[int, int]]

    @classmethod
    def from_masks(cls, masks: dict[str, sitk.Image]) -> "Segmentation":
        """One binary mask per structure (non-zero = inside), all on the same grid."""
        layers, structures = [], {}
        for name, mask in masks.items():
            if layers and not same_grid(layers[0], mask):
                raise XreconInputError(f"mask {name!r} is on another grid than the first mask")
            layers.append(sitk.Cast(mask != 0, sitk.sitkUInt8))
            structures[name] = (len(layers) - 1, 1)
        return cls(layers, structures)

    @property
    def reference(self) -> sitk.Image:
        """The first layer; its grid is the segmentation's grid."""
        return self.layers[0]

    @property
    def names(self) -> list[str]:
        return list(self.structures)

    def mask_array(self, name: str) -> np.ndarray:
        """Boolean mask of one structure, shape (k, j, i) as SimpleITK arrays are."""
        layer, value = self.structures[name]
        return sitk.GetArrayViewFromImage(self.layers[layer]) == value

    def mask(self, name: str) -> sitk.Image:
        """Binary uint8 mask image of one structure on the segmentation's grid."""
        image = sitk.GetImageFromArray(self.mask_array(name).astype(np.uint8))
        image.CopyInformation(self.reference)
        return image

    def union(self, names: list[str]) -> sitk.Image:
        """uint8 mask image of the voxels any of ``names`` holds (all zero for no names)."""
        union = np.zeros(sitk.GetArrayViewFromImage(self.reference).shape, np.uint8)
        for name in names:
            union |= self.mask_array(name)
        image = sitk.GetImageFromArray(union)
        image.CopyInformation(self.reference)
        return image

    def voxel_counts(self) -> dict[str, int]:
        """Number of voxels of every structure (zero for structures that are empty)."""
        counts_per_layer = [np.bincount(sitk.GetArrayViewFromImage(layer).ravel().astype(np.int64))
                            for layer in self.layers]
        return {name: int(counts_per_layer[layer][value]) if value < len(counts_per_layer[layer]) else 0
                for name, (layer, value) in self.structures.items()}

    def select(self, names: list[str] | None) -> list[str]:
        """Validate requested structure names; None means every non-empty structure.

        Raises XreconInputError for a name that does not exist or is empty, listing what does.
        """
        counts = self.voxel_counts()
        present = [name for name, count in counts.items() if count > 0]
        if names is None:
            return present
        for name in names:
            if name not in counts:
                raise XreconInputError(
                    f"structure {name!r} is not in the labels; available: {', '.join(present) or 'none'}")
            if counts[name] == 0:
                raise XreconInputError(
                    f"structure {name!r} is empty in the labels; non-empty: {', '.join(present) or 'none'}")
        return list(names)


def read_label_table(path: str | os.PathLike) -> dict[str, int]:
    """Read a CSV with columns ``id`` and ``structure`` (others ignored): name -> label id."""
    path = Path(path)
    try:
        with path.open(newline="") as stream:
            rows = list(csv.DictReader(stream))
    except FileNotFoundError:
        raise XreconInputError(f"labels table not found: {path}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise XreconInputError(f"cannot read labels table {path}: {error}") from None
    if not rows or not {"id", "structure"} <= set(rows[0]):
        raise XreconInputError(f"labels table {path} needs a header with columns 'id' and 'structure'")
    table: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):
        try:
            label = int(row["id"])
        except (TypeError, ValueError):
            raise XreconInputError(f"labels table {path}, line {line}: id {row['id']!r} is not a whole number") from None
        name = (row["structure"] or "").strip()
        if not name or name in table:
            raise XreconInputError(f"labels table {path}, line {line}: structure name empty or repeated")
        if label in table.values():  # two names for one id: which structure is it?
            raise XreconInputError(f"labels table {path}, line {line}: id {label} is given twice")
        table[name] = label
    return table


def _read_seg_nrrd(path: Path) -> Segmentation:
    import slicerio

    try:
        segmentation = slicerio.read_segmentation(str(path))
    except Exception as error:  # slicerio raises plain exceptions of several kinds for bad files
        raise XreconInputError(f"cannot read segmentation {path}: {error}") from None
    voxels = np.asarray(segmentation["voxels"])
    if voxels.ndim == 3:
        voxels = voxels[None]
    ijk_to_lps = np.asarray(segmentation["ijkToLPS"], dtype=np.float64)
    spacing = np.linalg.norm(ijk_to_lps[:3, :3], axis=0)
    layers = []
    for layer_voxels in voxels:  # slicerio gives (layer, i, j, k); SimpleITK wants (k, j, i)
        image = sitk.GetImageFromArray(np.ascontiguousarray(layer_voxels.transpose(2, 1, 0)))
        image.SetSpacing(spacing.tolist())
        image.SetOrigin(ijk_to_lps[:3, 3].tolist())
        image.SetDirection((ijk_to_lps[:3, :3] / spacing).ravel().tolist())
        layers.append(image)
    structures = {}
    for segment in segmentation["segments"]:
        if segment["name"] in structures:
            raise XreconInputError(f"segmentation {path} has two segments named {segment['name']!r}")
        structures[segment["name"]] = (int(segment.get("layer", 0)), int(segment["labelValue"]))
    return Segmentation(layers, structures)


def _read_label_map(path: Path, table: str | os.PathLike | None) -> Segmentation:
    if table is None:
        raise XreconInputError(f"label map {path} needs a labels table (CSV with columns id,structure)")
    image = read_image(path, "label map")
    voxels = sitk.GetArrayViewFromImage(image)
    if np.issubdtype(voxels.dtype, np.floating):
        if not np.all(np.isfinite(voxels)) or np.any(voxels != np.round(voxels)):
            raise XreconInputError(f"label map {path} holds non-integer values; is it a label map?")
    if voxels.min() < 0:
        raise XreconInputError(f"label map {path} holds negative values; is it a label map?")
    image = sitk.Cast(image, sitk.sitkUInt16 if voxels.max() > 255 else sitk.sitkUInt8)
    return Segmentation([image], {name: (0, label) for name, label in read_label_table(table).items()})


def _lossless_onto(label: sitk.Image, reference: sitk.Image) -> bool:
    """True when the label voxel centres fall exactly on reference voxel centres.

    That holds for a flipped or permuted axis order and for a crop (as Slicer writes
    ``.seg.nrrd`` files), so nearest-neighbour resampling moves voxels without changing any.
    """
    mapping = np.linalg.inv(ijk_to_ras(reference)) @ ijk_to_ras(label)
    linear = mapping[:3, :3]
    return bool(np.allclose(linear, np.round(linear), atol=1e-4)
                and np.allclose(np.abs(np.round(linear)).sum(axis=0), 1)
                and np.allclose(np.abs(np.round(linear)).sum(axis=1), 1)
                and np.allclose(mapping[:3, 3], np.round(mapping[:3, 3]), atol=1e-3))


def _onto_grid(segmentation: Segmentation, reference: sitk.Image, path: Path, resample: bool) -> Segmentation:
    label = segmentation.reference
    if same_grid(label, reference):
        for layer in segmentation.layers:
            layer.CopyInformation(reference)  # equal within tolerance; make it exact
        return segmentation
    lossless = _lossless_onto(label, reference)
    if not (lossless or resample):
        raise XreconInputError(
            f"labels {path} are on another grid than the CT (labels: {grid_summary(label)}; "
            f"CT: {grid_summary(reference)}); resample them onto the CT grid first, or ask for it "
            "(--resample-labels)")
    layers = []
    for layer in segmentation.layers:
        moved = sitk.Resample(layer, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                              layer.GetPixelID())
        if lossless and np.count_nonzero(sitk.GetArrayViewFromImage(moved)) != np.count_nonzero(
                sitk.GetArrayViewFromImage(layer)):
            raise XreconInputError(f"labels {path} reach beyond the CT volume")
        layers.append(moved)
    return Segmentation(layers, segmentation.structures)


def read_segmentation(
    path: str | os.PathLike,
    table: str | os.PathLike | None = None,
    reference: sitk.Image | None = None,
    resample: bool = False,
) -> Segmentation:
    """Read structures from a label map + table, or from a Slicer ``.seg.nrrd``.

    Args:
        path: label map (any SimpleITK format) or ``.seg.nrrd`` (segment names are the structures).
        table: CSV ``id,structure`` naming the label map's ids; not used for ``.seg.nrrd``.
        reference: the CT; labels must share its grid. A grid whose voxel centres coincide with
            the CT's (flipped or permuted axes, a crop) is moved onto it without loss; any
            other grid is refused unless ``resample`` (nearest neighbour) is asked for.
    """
    path = Path(path)
    if not path.exists():
        raise XreconInputError(f"labels not found: {path}")
    if path.name.lower().endswith(".seg.nrrd"):
        segmentation = _read_seg_nrrd(path)
    else:
        segmentation = _read_label_map(path, table)
    if reference is not None:
        segmentation = _onto_grid(segmentation, reference, path, resample)
    return segmentation

