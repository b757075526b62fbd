"""Bodies of the SingleImageRecon module's self-tests, run by Slicer's ScriptedLoadableModuleTest
and by pytest against ``slicer-core``.

Each check is a plain function of an MRML scene (``slicer.mrmlScene`` inside Slicer, a
``slicer-core`` scene outside) that raises AssertionError with a message when something is
wrong. They use MRML classes only (through ``scene.py``), never ``slicer.util`` or Qt, and do
not import ``slicer`` themselves (only ``scene.py`` does), so scenes are not type-annotated.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from SyntheticDataGenLib import scene as datagen_scene
from SyntheticDataGenLib import self_test as datagen_self_test
from SyntheticDataGenLib.self_test import check

from . import scene as mrml


def sample_case_checks(scene, name: str | None = None) -> tuple:
    """Load a bundled sample case (the first by default) into an empty scene and check it as
    ``SyntheticDataGenLib.self_test.sample_case_checks`` does; also that segment names are
    unique and every segment rasterises on the CT grid ([k, j, i] of the CT's shape) with
    voxels inside. Returns (volume node, segmentation node)."""
    volume_node, segmentation_node = datagen_self_test.sample_case_checks(scene, name)
    names = [segment for segment, _color in datagen_scene.segment_names_and_colors(segmentation_node)]
    check(len(set(names)) == len(names), f"segment names repeat: {names}")
    shape = mrml.volume_array(volume_node).shape
    for segment, mask in mrml.segment_masks(segmentation_node, volume_node).items():
        check(mask.shape == shape, f"segment {segment!r} rasterises to {mask.shape}, not the CT's {shape}")
        check(bool(mask.any()), f"segment {segment!r} has no voxel on the CT grid")
    return volume_node, segmentation_node


def second_load_checks(scene) -> None:
    """The first sample case loaded twice (``SyntheticDataGenLib.scene.load_case``) gives new nodes
    with new names, and never a label map volume."""
    from SyntheticDataGenLib.cases.sample_data import list_sample_cases, sample_case

    case = sample_case(list_sample_cases()[0])
    first, second = (datagen_scene.load_case(scene, case.ct_path, case.labels_path, case.table_path, name=case.name)
                     for _ in range(2))
    for a, b in zip(first, second):
        check(a.GetID() != b.GetID() and a.GetName() != b.GetName(), f"the second load re-used {a.GetName()}")
    for class_name, expected in (("vtkMRMLLabelMapVolumeNode", 0), ("vtkMRMLScalarVolumeNode", 2),
                                 ("vtkMRMLSegmentationNode", 2)):
        count = scene.GetNumberOfNodesByClass(class_name)
        check(count == expected, f"{count} nodes of class {class_name}, expected {expected}")


def _check_geometry_file(radiograph_node, geometry) -> None:
    """A geometry file is read instead of the node's own; one of another detector size is refused."""
    from SyntheticDataGenLib.errors import XreconInputError

    folder = Path(tempfile.mkdtemp(prefix="SingleImageReconTest-"))
    try:
        path = folder / "geometry.json"
        path.write_text(json.dumps(geometry.to_dict()))
        check(mrml.radiograph_geometry(None, path) == geometry, "the geometry file reads back differently")
        path.write_text(json.dumps(dict(geometry.to_dict(), size_px=[geometry.width + 1, geometry.height])))
        image = mrml.radiograph_array(radiograph_node)
        try:
            mrml.radiograph_geometry(radiograph_node, path, (image.shape[1], image.shape[0]))
        except XreconInputError as error:
            check("select the geometry of this radiograph" in str(error), f"unexpected message: {error}")
        else:
            raise AssertionError("a geometry of another detector size was accepted")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def demo_run_checks(scene, python: str, env: dict | None, run_dir, device: str = "cpu", idle=None,
                    timeout_s: float = 3600.0) -> dict:
    """What the Demo button does, on the first sample case: the reference CT and segments written
    to files, ``xrecon demo`` in a subprocess (``python`` with ``env``), and its scene bundle in a
    folder of the scene (``run_scene.add_demo``). ``idle`` is called while the run goes.

    Checks: the folder holds exactly the nodes the bundle added; three radiographs, each on the
    detector plane of the demo's ``geometry_view<N>.json``; a model for every method and
    structure ``metrics.json`` measured, each showing ``distance_mm``; one colour legend saying
    which sign is outside; a metrics table row for every measured (method, structure), referencing
    the reference segmentation; and Compare showing one method's models. Returns the nodes.
    """
    from SyntheticDataGenLib.dataset.generation_job import wait_for

    from . import run_scene
    from .reconstruction_run import CommandChain, RunInputs, RunOptions, demo_commands

    volume_node, segmentation_node = sample_case_checks(scene)
    inputs = RunInputs(**run_scene.write_reference_inputs(Path(run_dir) / "inputs", volume_node, segmentation_node))
    chain = CommandChain(demo_commands(python, inputs, run_dir, RunOptions(device=device, spacing_mm=2.0)),
                         env=env, cwd=str(run_dir), output_dir=str(run_dir))
    code = wait_for(chain, timeout_s, idle)
    check(code == 0, f"the demo failed ({code}): " + "\n".join(list(chain.log)[-10:]))
    demo_dir = Path(run_dir) / "demo"
    nodes = run_scene.add_demo(scene, "Demo 1", demo_dir, segmentation_node)
    _check_demo_nodes(scene, nodes, demo_dir, segmentation_node)
    return nodes


def _check_demo_nodes(scene, nodes: dict, demo_dir: Path, reference) -> None:
    """The folder ``run_scene.add_demo`` made holds the demo's nodes, and they show it."""
    from SyntheticDataGenLib.projection.geometry import ProjectionGeometry

    from . import run_scene

    hierarchy = scene.GetSubjectHierarchyNode()
    folder = nodes["folder"]
    children = [hierarchy.GetItemDataNode(hierarchy.GetItemByPositionUnderParent(folder, index))
                for index in range(hierarchy.GetNumberOfItemChildren(folder))]
    check([node.GetID() for node in children] == [node.GetID() for node in nodes["nodes"]],
          f"the demo folder holds {[node.GetName() for node in children]}, "
          f"the bundle added {[node.GetName() for node in nodes['nodes']]}")
    check(len(nodes["radiographs"]) == 3, f"{len(nodes['radiographs'])} radiographs, expected 3")
    for index, radiograph in enumerate(nodes["radiographs"], start=1):
        geometry = ProjectionGeometry.load(demo_dir / f"geometry_view{index}.json")
        check(np.allclose(mrml.volume_ijk_to_ras(radiograph), geometry.detector_ijk_to_ras(), atol=1e-6),
              f"{radiograph.GetName()} is not on its detector plane")
    metrics = json.loads((demo_dir / "metrics.json").read_text())["methods"]
    measured = {method: set(entry["structures"]) for method, entry in metrics.items()}
    shown = {method: set(models) for method, models in nodes["models"].items()}
    check(shown == measured, f"models {shown}, measured {measured}")
    for method, models in nodes["models"].items():
        for structure, model in models.items():
            check(model.GetPolyData().GetPointData().GetArray(mrml.DISTANCE_ARRAY) is not None
                  and bool(model.GetDisplayNode().GetScalarVisibility()), f"{model.GetName()} shows no distances")
    legends = [scene.GetNthNodeByClass(i, "vtkMRMLColorLegendDisplayNode")
               for i in range(scene.GetNumberOfNodesByClass("vtkMRMLColorLegendDisplayNode"))]
    check(len(legends) == 1 and "outside" in legends[0].GetTitleText(), "no colour legend saying which sign is outside")
    table = nodes["metrics"]
    rows = sum(len(structures) for structures in measured.values())
    check(table is not None and table.GetNumberOfRows() == rows,
          f"{table.GetNumberOfRows() if table else 'no'} table rows, expected {rows}")
    check(table.GetNodeReferenceID(run_scene.REFERENCE_ROLE) == reference.GetID(),
          "the metrics table does not reference the reference segmentation")
    check(run_scene.show_models(scene, "depth") == len(measured["depth"]), "Compare does not show depth alone")


def reconstruction_run_checks(scene, python: str, env: dict | None, run_dir, metadata: dict, device: str = "cpu",
                              idle=None, timeout_s: float = 3600.0) -> dict:
    """What Apply does, on the first sample case: a test radiograph of its CT, a run of
    ``xrecon reconstruct`` and ``xrecon evaluate`` in a subprocess (``python`` with ``env``),
    and the run's folder in the scene (``run_scene.add_run``).

    ``metadata`` is the depth bundle's (``SingleImageReconLib.networks.bundle_format``); ``idle``
    is called while the run goes (Slicer passes ``processEvents``). Checks the folder's nodes,
    classes and order, that the radiograph lies on its detector plane, that every measured model
    carries ``distance_mm`` whose mean is the one-sided distance in ``metrics.json``, the legend,
    the metrics table (its mean row and its reference segmentation), and the Compare switch.
    Returns the run's nodes.
    """
    from SyntheticDataGenLib.dataset.generation_job import wait_for

    from . import run_scene
    from .radiographs.radiograph_io import read_radiograph
    from .reconstruction_run import CommandChain, RunOptions, read_run, run_commands

    volume_node, segmentation_node = sample_case_checks(scene)
    radiograph = run_scene.add_test_radiograph(scene, volume_node, segmentation_node, metadata, device)
    image = mrml.radiograph_array(radiograph)
    geometry = mrml.radiograph_geometry(radiograph, "", (image.shape[1], image.shape[0]))
    _check_geometry_file(radiograph, geometry)
    inputs = run_scene.write_run_inputs(run_dir, radiograph, geometry, volume_node, segmentation_node)
    present = [name for name, _color in datagen_scene.segment_names_and_colors(segmentation_node)]
    structures = tuple(name for name in metadata["xrecon"]["structures"] if name in present)[:2]
    chain = CommandChain(run_commands(python, inputs, run_dir, RunOptions(device=device, spacing_mm=2.0,
                                                                          structures=structures)),
                         env=env, cwd=str(run_dir), output_dir=str(run_dir))
    code = wait_for(chain, timeout_s, idle)
    check(code == 0, f"the run failed ({code}): " + "\n".join(list(chain.log)[-10:]))
    result = read_run(run_dir)
    nodes = run_scene.add_run(scene, "Run 1", result, [read_radiograph(inputs.radiograph_path).image],
                              segmentation_node, metadata["xrecon"]["structures"])
    _check_run_nodes(scene, nodes, result, geometry, segmentation_node)
    return nodes


def _check_run_nodes(scene, nodes: dict, result, geometry, reference) -> None:
    """The folder ``run_scene.add_run`` made holds exactly the run's nodes, and they show it."""
    from . import run_scene

    hierarchy = scene.GetSubjectHierarchyNode()
    folder = nodes["folder"]
    children = [hierarchy.GetItemDataNode(hierarchy.GetItemByPositionUnderParent(folder, index))
                for index in range(hierarchy.GetNumberOfItemChildren(folder))]
    found = [(node.GetClassName(), node.GetName()) for node in children]
    expected = [("vtkMRMLScalarVolumeNode", "Run 1 radiograph"), ("vtkMRMLModelNode", "Run 1 X-ray geometry"),
                *(("vtkMRMLModelNode", f"{result.method} {name}") for name in result.surfaces),
                *(("vtkMRMLModelNode", f"reference {name}") for name in result.truth),
                *(("vtkMRMLMarkupsFiducialNode", node.GetName()) for node in nodes["landmarks"]),
                ("vtkMRMLTableNode", "Run 1 metrics"),
                *([("vtkMRMLTableNode", "Run 1 not found")] if result.not_found else [])]
    check(found == expected, f"the run folder holds {found}, expected {expected}")
    check(bool(result.metrics), "nothing was measured against the reference")
    corners = np.array([[i, j, 0.0, 1.0] for i in (0, geometry.width - 1) for j in (0, geometry.height - 1)])
    placed = (corners @ mrml.volume_ijk_to_ras(nodes["radiographs"][0]).T)[:, :3]
    on_detector = np.array([geometry.pixel_center_ras(i, j) for i, j, _, _ in corners])
    check(np.allclose(placed, on_detector, atol=1e-6), "the radiograph's corners are off its detector plane")
    for name, metrics in result.metrics.items():
        model = nodes["models"][name]
        array = model.GetPolyData().GetPointData().GetArray(mrml.DISTANCE_ARRAY)
        check(array is not None, f"{model.GetName()} has no {mrml.DISTANCE_ARRAY}")
        check(model.GetDisplayNode().GetActiveScalarName() == mrml.DISTANCE_ARRAY, f"{model.GetName()} shows no distances")
        mean = float(np.mean(np.abs([array.GetValue(i) for i in range(array.GetNumberOfTuples())])))
        # vertex mean against the area-weighted mean over a densified surface: close, not equal
        check(abs(mean - metrics["to_truth_mm"]) <= max(0.5, 0.25 * metrics["to_truth_mm"]),
              f"{name}: mean |distance_mm| {mean:.2f} mm, metrics.json to_truth_mm {metrics['to_truth_mm']:.2f} mm")
    legends = [scene.GetNthNodeByClass(i, "vtkMRMLColorLegendDisplayNode")
               for i in range(scene.GetNumberOfNodesByClass("vtkMRMLColorLegendDisplayNode"))]
    check(len(legends) == 1 and "outside" in legends[0].GetTitleText(), "no colour legend saying which sign is outside")
    table = nodes["metrics"].GetTable()
    check(table.GetNumberOfRows() == len(result.metrics) + 1, f"{table.GetNumberOfRows()} metrics rows")
    check(table.GetValueByName(table.GetNumberOfRows() - 1, "structure").ToString() == "mean", "no mean row")
    check(nodes["metrics"].GetNodeReference(run_scene.REFERENCE_ROLE) is reference, "the table names no reference")
    one = next(iter(nodes["models"]))
    check(run_scene.show_models(scene, result.method, one) == 1, "Compare shows more than one structure")
    check(all(bool(m.GetDisplayNode().GetVisibility()) == (n == one) for n, m in nodes["models"].items()),
          "Compare did not show just the chosen structure")
    check(run_scene.show_models(scene) == len(nodes["models"]), "Compare did not show every model again")
