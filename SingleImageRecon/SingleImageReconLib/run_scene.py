"""A reconstruction run in the QA scene: one subject hierarchy folder a run, and the Compare switch.

:func:`add_run` shows a :class:`~.reconstruction_run.RunResult` the way the SingleImageRecon
module does after Apply. Everything goes into one folder named after the run:

- the radiograph on its detector plane and the X-ray geometry (source, frustum, detector outline);
- one model per found structure, "METHOD STRUCTURE", coloured by its signed distance to the
  reference (``distance_mm``: positive outside the reference) with a colour legend, or in the
  structure's colour when nothing was measured;
- the reference surfaces it was measured against, "reference STRUCTURE", half transparent;
- the fitted 3D landmarks and each view's 2D landmarks on the detector plane, as point lists;
- a metrics table (one row a structure, then the mean) that references the reference
  segmentation, and a table of the structures not found, with their presence probability.

:func:`add_demo` does the same for a demo run (``xrecon demo`` in the background): the nodes of
the demo's scene bundle, in one folder. Models carry the attributes ``xrecon.method`` and
``xrecon.structure``, so :func:`show_models` can switch between methods and structures across
all runs. Only MRML calls, through
:mod:`.scene`; tested with slicer-core.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import scene as mrml
from .reconstruction_run import RunInputs, RunResult

METHOD_ATTRIBUTE = mrml.METHOD_ATTRIBUTE
STRUCTURE_ATTRIBUTE = mrml.STRUCTURE_ATTRIBUTE
#: Node reference from a run's metrics table to the segmentation the run was measured against.
REFERENCE_ROLE = "xrecon.reference"
#: Attribute of a volume node that Slicer's DICOM plugin loaded: its instance UIDs.
DICOM_UIDS_ATTRIBUTE = "DICOM.instanceUIDs"


def add_run(scene, name: str, result: RunResult, radiographs: Sequence[np.ndarray],
            reference_segmentation=None, structure_names: Sequence[str] = ()) -> dict:
    """Add one run's nodes in a new folder ``name``; returns them by kind.

    Args:
        radiographs: each view's [height, width] image (as read), placed by ``result.geometries``.
        reference_segmentation: the segmentation node measured against (referenced, not copied).
        structure_names: the network's structures in its order, for stable colours (default:
            the order of the run's own structures).

    Returns {"folder": item id, "radiographs": [...], "geometry": [...], "models": {structure: node},
    "truth": {structure: node}, "landmarks": [...], "metrics": node or None, "not_found": node or None}.
    """
    from SyntheticDataGenLib import scene as datagen_scene

    if len(radiographs) != len(result.geometries):
        raise ValueError(f"{len(radiographs)} radiographs for {len(result.geometries)} views")
    order = list(structure_names) or [*result.surfaces, *result.not_found]
    suffix = lambda index: f" view {index}" if len(radiographs) > 1 else ""  # noqa: E731
    nodes: dict = {"radiographs": [], "geometry": [], "landmarks": []}
    for index, (image, geometry) in enumerate(zip(radiographs, result.geometries), start=1):
        nodes["radiographs"].append(mrml.add_radiograph(scene, f"{name} radiograph{suffix(index)}", image, geometry))
        model = mrml.add_node(scene, "vtkMRMLModelNode", f"{name} X-ray geometry{suffix(index)}", "geometry")
        model.CreateDefaultDisplayNodes()
        nodes["geometry"].append(datagen_scene.update_geometry_model(scene, geometry, model))
    nodes["models"] = {}
    for structure, surface in result.surfaces.items():
        model = mrml.add_model(scene, f"{result.method} {structure}", surface,
                               color=mrml.palette_color(structure, order))
        model.SetAttribute(METHOD_ATTRIBUTE, result.method)
        model.SetAttribute(STRUCTURE_ATTRIBUTE, structure)
        nodes["models"][structure] = model
    measured = [model for model in nodes["models"].values() if model.GetDisplayNode().GetScalarVisibility()]
    if measured:
        mrml.add_distance_legend(scene, measured[0])
    nodes["truth"] = {}
    for structure, surface in result.truth.items():
        model = mrml.add_model(scene, f"reference {structure}", surface, scalars=None, opacity=0.5,
                               color=mrml.palette_color(structure, order), role="truth_model")
        model.SetAttribute(STRUCTURE_ATTRIBUTE, structure)
        nodes["truth"][structure] = model
    if result.fitted_landmarks is not None:
        nodes["landmarks"].append(mrml.add_landmarks(scene, f"{name} fitted landmarks", *result.fitted_landmarks))
    for index, landmarks in enumerate(result.view_landmarks, start=1):
        if landmarks is not None:
            nodes["landmarks"].append(mrml.add_landmarks(scene, f"{name} image landmarks{suffix(index)}", *landmarks))
    nodes["metrics"] = None
    if result.metrics:
        rows = [{"method": result.method, "structure": structure,
                 **{key: metrics.get(key) for key in mrml.TABLE_METRICS}}
                for structure, metrics in result.metrics.items()]
        rows.append({"method": result.method, "structure": "mean",
                     **{key: result.mean.get(key) for key in mrml.TABLE_METRICS}})
        nodes["metrics"] = mrml.add_metrics_table(scene, f"{name} metrics", rows)
        if reference_segmentation is not None:
            nodes["metrics"].SetNodeReferenceID(REFERENCE_ROLE, reference_segmentation.GetID())
    nodes["not_found"] = None
    if result.not_found:
        nodes["not_found"] = mrml.add_metrics_table(
            scene, f"{name} not found",
            [{"structure": structure, "presence": presence} for structure, presence in result.not_found.items()])
    members = [*nodes["radiographs"], *nodes["geometry"], *nodes["models"].values(), *nodes["truth"].values(),
               *nodes["landmarks"], *(node for node in (nodes["metrics"], nodes["not_found"]) if node is not None)]
    nodes["folder"] = mrml.put_in_folder(scene, members, name)
    return nodes


def add_demo(scene, name: str, demo_dir, reference_segmentation=None) -> dict:
    """Add a finished demo run (what ``xrecon demo`` wrote into ``demo_dir``) in a new folder ``name``.

    The nodes are those of the demo's ``scene.mrb`` (``scene.add_qa_nodes`` of
    ``reconstruction_run.read_demo``) but the CT and its labels, which the scene holds already:
    the radiographs on their detector planes, every method's models ("NAME METHOD STRUCTURE",
    coloured by signed distance with a legend, tagged for Compare), the point lists, and the
    metrics table, which references ``reference_segmentation`` when given.

    Returns {"folder": item id, "radiographs": [...], "models": {method: {structure: node}},
    "landmarks": [...], "metrics": node or None, "nodes": every node in the folder}.
    """
    from .reconstruction_run import read_demo

    added = mrml.add_qa_nodes(scene, **read_demo(demo_dir, prefix=f"{name} "), metrics_name=f"{name} metrics")
    nodes = {key: added[key] for key in ("radiographs", "landmarks", "metrics")}
    nodes["models"] = {}
    for model in added["models"].values():
        nodes["models"].setdefault(model.GetAttribute(METHOD_ATTRIBUTE), {})[model.GetAttribute(STRUCTURE_ATTRIBUTE)] = model
    if nodes["metrics"] is not None and reference_segmentation is not None:
        nodes["metrics"].SetNodeReferenceID(REFERENCE_ROLE, reference_segmentation.GetID())
    nodes["nodes"] = [*added["radiographs"], *added["models"].values(), *added["landmarks"],
                      *([added["metrics"]] if added["metrics"] is not None else [])]
    nodes["folder"] = mrml.put_in_folder(scene, nodes["nodes"], name)
    return nodes


def missing_inputs(radiograph_node, geometry_source: str, geometry_path: str = "") -> str:
    """Why a run cannot start from this radiograph and geometry source ("" when it can).

    Sources: "radiograph" (the geometry the node carries), "file" (a JSON file), "dicom" (the
    tags of the DICOM file the node was loaded from), "preset" (always possible).
    """
    if not radiograph_node:
        return "Select a radiograph."
    if geometry_source == "radiograph" and not radiograph_node.GetAttribute(mrml.GEOMETRY_ATTRIBUTE):
        return "The radiograph carries no geometry: choose a geometry file, DICOM tags or a preset."
    if geometry_source == "file" and not geometry_path:
        return "Select the geometry file of the radiograph."
    if geometry_source == "dicom" and not radiograph_node.GetAttribute(DICOM_UIDS_ATTRIBUTE):
        return "The radiograph was not loaded from DICOM: choose another geometry source."
    return ""


def radiograph_geometry(radiograph_node, geometry_source: str, geometry_path: str = "", preset: str = "ap",
                        pixel_spacing_mm: float = 0.2):
    """The ``ProjectionGeometry`` of a radiograph node for a geometry source other than "dicom"
    (see :func:`missing_inputs`); a preset is centred on the origin with square pixels (mm)."""
    from SyntheticDataGenLib.projection.geometry import preset_geometry

    image = mrml.radiograph_array(radiograph_node)
    size = (image.shape[1], image.shape[0])
    if geometry_source == "preset":
        return preset_geometry(preset, size_px=size, pixel_spacing_mm=(pixel_spacing_mm, pixel_spacing_mm))
    return mrml.radiograph_geometry(radiograph_node, geometry_path if geometry_source == "file" else "", size)


def write_run_inputs(run_dir, radiograph_node, geometry, reference_volume=None, reference_segmentation=None,
                     radiograph_file: str = "") -> RunInputs:
    """Write what a run reads into ``RUN_DIR/inputs`` and return its ``RunInputs``.

    The radiograph node's voxels go to ``radiograph.nrrd`` placed by ``geometry`` (also written
    as ``geometry.json``); with ``radiograph_file`` (a DICOM file the node was loaded from) and
    ``geometry`` None, that file is read by the run itself, geometry from its tags. With both
    reference nodes, every segment goes to ``labels.nrrd`` (label k + 1 for segment k, on the
    CT grid) and ``labels.csv``.
    """
    import json
    from pathlib import Path

    from SyntheticDataGenLib.projection.detector_images import write_detector_image

    folder = Path(run_dir) / "inputs"
    folder.mkdir(parents=True, exist_ok=True)
    if geometry is None:
        if not radiograph_file:
            raise ValueError("a run needs the radiograph's geometry or the file that carries it")
        inputs = {"radiograph_path": str(radiograph_file)}
    else:
        image = mrml.radiograph_array(radiograph_node)
        write_detector_image(folder / "radiograph.nrrd", image, geometry)
        (folder / "geometry.json").write_text(json.dumps(geometry.to_dict(), indent=2), encoding="utf-8")
        inputs = {"radiograph_path": str(folder / "radiograph.nrrd"), "geometry": str(folder / "geometry.json")}
    if reference_volume is not None and reference_segmentation is not None:
        inputs.update(write_reference_inputs(folder, reference_volume, reference_segmentation, with_ct=False))
    return RunInputs(**inputs)


def write_reference_inputs(folder, volume_node, segmentation_node, with_ct: bool = True) -> dict:
    """Write a reference CT node's segments as ``FOLDER/labels.nrrd`` (label k + 1 for segment k, on
    the CT grid) with ``labels.csv``, and with ``with_ct`` the CT as ``ct.nrrd``; returns the
    paths as ``RunInputs`` fields (``ct_path``, ``labels_path``, ``labels_table_path``)."""
    from pathlib import Path

    from SyntheticDataGenLib.cases.ct_io import write_image
    from SyntheticDataGenLib.cases.label_map import write_label_map

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ct, segmentation = mrml.reference_images(volume_node, segmentation_node)
    write_label_map(segmentation, folder / "labels.nrrd", folder / "labels.csv")
    paths = {"labels_path": str(folder / "labels.nrrd"), "labels_table_path": str(folder / "labels.csv")}
    if with_ct:
        write_image(ct, str(folder / "ct.nrrd"))
        paths["ct_path"] = str(folder / "ct.nrrd")
    return paths


def add_test_radiograph(scene, volume_node, segmentation_node, metadata: dict, device: str = "cpu"):
    """An AP radiograph (DRR line integral) of a reference CT, rendered as the bundle's training
    images were (``SingleImageReconLib.demo.case_radiographs``), as a node on its detector plane
    carrying its geometry. XreconInputError when the CT holds none of the bundle's structures."""
    from .demo import case_radiographs, case_structures

    ct, segmentation = mrml.reference_images(volume_node, segmentation_node, metadata["xrecon"]["structures"])
    structures = case_structures(segmentation, metadata)
    (geometry,), (image,) = case_radiographs(ct, segmentation, structures, metadata, lao_deg=(0.0,), device=device)
    return mrml.add_radiograph(scene, f"{volume_node.GetName()} test radiograph", image, geometry)


def run_methods_and_structures(scene) -> tuple[list[str], list[str]]:
    """The methods and structures of every run model in the scene, each in first-seen order."""
    methods, structures = [], []
    for model in _run_models(scene):
        for values, attribute in ((methods, METHOD_ATTRIBUTE), (structures, STRUCTURE_ATTRIBUTE)):
            value = model.GetAttribute(attribute)
            if value not in values:
                values.append(value)
    return methods, structures


def show_models(scene, method: str = "", structure: str = "") -> int:
    """Show the run models of ``method`` and ``structure`` (empty: any) and hide the others;
    reference surfaces follow ``structure``. Returns how many run models are shown."""
    shown = 0
    for model in _run_models(scene):
        visible = (not method or model.GetAttribute(METHOD_ATTRIBUTE) == method) and (
            not structure or model.GetAttribute(STRUCTURE_ATTRIBUTE) == structure)
        model.GetDisplayNode().SetVisibility(visible)
        shown += visible
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLModelNode")):
        model = scene.GetNthNodeByClass(index, "vtkMRMLModelNode")
        if model.GetAttribute(mrml.ROLE_ATTRIBUTE) == "truth_model" and model.GetAttribute(STRUCTURE_ATTRIBUTE):
            model.GetDisplayNode().SetVisibility(not structure or model.GetAttribute(STRUCTURE_ATTRIBUTE) == structure)
    return shown


def _run_models(scene) -> list:
    models = (scene.GetNthNodeByClass(index, "vtkMRMLModelNode")
              for index in range(scene.GetNumberOfNodesByClass("vtkMRMLModelNode")))
    return [model for model in models if model.GetAttribute(METHOD_ATTRIBUTE) and model.GetDisplayNode()]
