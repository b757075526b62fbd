"""Bodies of the SyntheticDataGen module's self-tests, run by Slicer's ScriptedLoadableModuleTest
and by pytest against ``slicer-core``.

Each check is a plain function of an MRML scene (``slicer.mrmlScene`` inside Slicer, a
``slicer-core`` scene outside) that raises AssertionError with a message when something is
wrong. They use MRML classes only (through ``scene.py``), never ``slicer.util`` or Qt, and do
not import ``slicer`` themselves (only ``scene.py`` does), so scenes are not type-annotated.
"""

from __future__ import annotations

import numpy as np

from . import scene as mrml


def check(condition: bool, message: str) -> None:
    """Raise AssertionError(message) unless ``condition`` (not ``assert``: the checks must also
    run under ``python -O``)."""
    if not condition:
        raise AssertionError(message)


def _structures_present(labels_path, table_path) -> set[str]:
    """Names the label table gives the ids that occur in the label map (read independently of
    ``labels.read_segmentation``, so the check does not repeat the code it checks)."""
    import SimpleITK as sitk

    from .cases.labels import read_label_table

    ids = set(np.unique(sitk.GetArrayFromImage(sitk.ReadImage(str(labels_path)))).tolist())
    return {structure for structure, label in read_label_table(table_path).items() if label in ids}


def sample_case_checks(scene, name: str | None = None) -> tuple:
    """Load a bundled sample case (the first by default) into an MRML scene (vtkMRMLScene) without
    volumes or segmentations, with ``scene.load_case``, and check it; returns (volume node,
    segmentation node).

    Checks: one scalar volume and no label map volume, one segmentation; segment names are the
    label table's structures present in the label map; the volume's IJK->RAS (mm) is the CT
    file's (``ct_io.ijk_to_ras``); the segmentation's reference volume is the CT.
    """
    from .cases.ct_io import ijk_to_ras, read_ct
    from .cases.sample_data import list_sample_cases, sample_case

    names = list_sample_cases()
    check(bool(names), "no bundled sample case")
    case = sample_case(name or names[0])
    volume_node, segmentation_node = mrml.load_case(scene, case.ct_path, case.labels_path, case.table_path,
                                                    name=case.name)

    check(volume_node.IsA("vtkMRMLScalarVolumeNode") and not volume_node.IsA("vtkMRMLLabelMapVolumeNode"),
          f"the CT is a {volume_node.GetClassName()}, not a plain scalar volume")
    check(segmentation_node.IsA("vtkMRMLSegmentationNode"),
          f"the labels are a {segmentation_node.GetClassName()}, not a segmentation")
    # A label map is a scalar volume too: one scalar volume and no label map means no leftover label map.
    for class_name, expected in (("vtkMRMLScalarVolumeNode", 1), ("vtkMRMLLabelMapVolumeNode", 0),
                                 ("vtkMRMLSegmentationNode", 1)):
        count = scene.GetNumberOfNodesByClass(class_name)
        check(count == expected, f"{count} nodes of class {class_name}, expected {expected}")
    check(volume_node.GetImageData() is not None, "the CT volume has no voxels")

    segment_names = {segment for segment, _color in mrml.segment_names_and_colors(segmentation_node)}
    expected_names = _structures_present(case.labels_path, case.table_path)
    check(bool(segment_names) and segment_names == expected_names,
          f"segments {sorted(segment_names)}, expected the structures present {sorted(expected_names)}")

    expected_matrix = ijk_to_ras(read_ct(case.ct_path))
    check(np.allclose(mrml.volume_ijk_to_ras(volume_node), expected_matrix, atol=1e-6),
          f"CT IJK->RAS\n{mrml.volume_ijk_to_ras(volume_node)}\nis not the file's\n{expected_matrix}")
    reference_id = segmentation_node.GetNodeReferenceID(segmentation_node.GetReferenceImageGeometryReferenceRole())
    check(reference_id == volume_node.GetID(), "the segmentation's reference volume is not the CT")
    return volume_node, segmentation_node


def _first_sample_case(scene) -> tuple:
    """(volume node, segmentation node) of the first bundled sample case, loaded into ``scene``."""
    from .cases.sample_data import list_sample_cases, sample_case

    case = sample_case(list_sample_cases()[0])
    return mrml.load_case(scene, case.ct_path, case.labels_path, case.table_path, name=case.name)


def describe_checks(scene) -> dict:
    """Describe the first sample case from its nodes (``prepared_case.describe_nodes``, what the
    module's Describe shows) and check it; returns the description.

    Checks: the CT's size and spacing are the node's; one entry per segment, each with voxels,
    volume and a RAS box inside the CT's (which also checks the LPS/RAS handling).
    """
    from .prepared_case import describe_nodes

    volume_node, segmentation_node = _first_sample_case(scene)
    info = describe_nodes(volume_node, segmentation_node)

    check([int(n) for n in info["ct"]["size"]] == list(volume_node.GetImageData().GetDimensions()),
          f"CT size {info['ct']['size']} is not the node's {volume_node.GetImageData().GetDimensions()}")
    check(np.allclose(info["ct"]["spacing_mm"], volume_node.GetSpacing(), atol=1e-4),
          f"CT spacing {info['ct']['spacing_mm']} is not the node's {volume_node.GetSpacing()}")
    names = {name for name, _color in mrml.segment_names_and_colors(segmentation_node)}
    check(bool(info["structures"]) and set(info["structures"]) == names,
          f"described {sorted(info['structures'])}, segments {sorted(names)}")
    bounds = np.reshape(mrml.volume_bounds_ras(volume_node), (3, 2))
    for name, structure in info["structures"].items():
        check(structure["voxels"] > 0 and structure["volume_ml"] > 0, f"{name} is empty")
        low, high = np.asarray(structure["bounds_ras_mm"])
        check(bool(np.all(low >= bounds[:, 0] - 1e-3) and np.all(high <= bounds[:, 1] + 1e-3) and np.all(low <= high)),
              f"{name}'s RAS box {low}..{high} is not inside the CT's {bounds.tolist()}")
    return info


def preset_geometry_checks(scene) -> None:
    """Every view preset, at several C-arm angles, puts the source outside the CT; AP's source is
    anterior (+A) and PA's posterior; distances and detector options reach the geometry."""
    from .projection.geometry import PRESETS, preset_geometry

    volume_node, _segmentation_node = _first_sample_case(scene)
    bounds = np.reshape(mrml.volume_bounds_ras(volume_node), (3, 2))
    centre = mrml.volume_center_ras(volume_node)
    for preset in PRESETS:
        for lao, cranial in ((0.0, 0.0), (30.0, 15.0), (-45.0, -20.0)):
            source = np.asarray(preset_geometry(preset, isocenter_ras_mm=centre, lao_deg=lao,
                                                cranial_deg=cranial).source_ras_mm)
            check(not np.all((bounds[:, 0] <= source) & (source <= bounds[:, 1])),
                  f"{preset} LAO {lao} cranial {cranial}: the source {source} is inside the CT")
    check(preset_geometry("ap", isocenter_ras_mm=centre).source_ras_mm[1] > bounds[1, 1], "AP's source is not anterior")
    check(preset_geometry("pa", isocenter_ras_mm=centre).source_ras_mm[1] < bounds[1, 0], "PA's source is not posterior")
    geometry = preset_geometry("ap", isocenter_ras_mm=centre, source_to_isocenter_mm=700.0,
                               source_to_detector_mm=1000.0, size_px=(120, 80), pixel_spacing_mm=(2.0, 2.0))
    check(tuple(geometry.size_px) == (120, 80), f"detector {tuple(geometry.size_px)}, expected (120, 80)")
    check(abs(float(geometry.source_to_detector_mm) - 1000.0) < 1e-6,
          f"source to detector {geometry.source_to_detector_mm} mm, expected 1000")


def geometry_model_checks(scene) -> None:
    """The "X-ray geometry" model: 12 points with a "part" array, the source first, 3D only; drawn
    again, the same node is updated."""
    from .projection.geometry import preset_geometry

    volume_node, _segmentation_node = _first_sample_case(scene)
    geometry = preset_geometry("lateral-left", isocenter_ras_mm=mrml.volume_center_ras(volume_node),
                               lao_deg=20.0, cranial_deg=-10.0)
    model_node = mrml.update_geometry_model(scene, geometry)
    poly_data = model_node.GetPolyData()
    check(poly_data.GetNumberOfPoints() == 12, f"{poly_data.GetNumberOfPoints()} points, expected 12")
    check(poly_data.GetCellData().GetArray("part") is not None, "no 'part' cell array")
    check(np.allclose(poly_data.GetPoint(0), geometry.source_ras_mm, atol=1e-6), "point 0 is not the source")
    again = mrml.update_geometry_model(scene, preset_geometry("ap", isocenter_ras_mm=mrml.volume_center_ras(volume_node)))
    check(again is model_node, "a second drawing made a new node")
    models = [scene.GetNthNodeByClass(i, "vtkMRMLModelNode") for i in range(scene.GetNumberOfNodesByClass("vtkMRMLModelNode"))]
    count = sum(1 for node in models if node.GetAttribute(mrml.ROLE_ATTRIBUTE) == "geometry")
    check(count == 1, f"{count} geometry models, expected 1")
    check(not model_node.GetDisplayNode().GetVisibility2D(), "the geometry model shows in the slice views")


def preview_checks(scene) -> dict:
    """Preview three structures of the first sample case (``prepared_case.render_preview``) and check it.

    Checks: the isocentre is the generator's (the box of the structures' separate masks); the DRR
    and the masks are 96×64 images on the detector (pixel centres where the geometry says); label
    k + 1 marks structure k, the last over the others, coloured by segment name; a second preview
    re-uses the nodes and the prepared CT and adds no node. Returns the first preview's result.
    Needs PyTorch.
    """
    import SimpleITK as sitk

    from .cases.case_info import structures_centre_ras
    from .prepared_case import PreparedCase, render_preview
    from .projection.geometry import preset_geometry

    volume_node, segmentation_node = _first_sample_case(scene)
    structures = [name for name, _color in mrml.segment_names_and_colors(segmentation_node)][:3]
    case = PreparedCase()
    isocenter = case.isocenter_ras(volume_node, segmentation_node, structures)
    ct = case.inputs(volume_node, segmentation_node, structures)[0]
    masks = mrml.segment_mask_images(segmentation_node, volume_node, structures, ct)
    expected = structures_centre_ras(ct, [sitk.GetArrayViewFromImage(mask) != 0 for mask in masks.values()])
    check(np.allclose(isocenter, expected, atol=1e-6), f"isocentre {isocenter}, the generator's {expected}")

    def geometry(lao):
        return preset_geometry("ap", isocenter_ras_mm=isocenter, lao_deg=lao, cranial_deg=5.0, size_px=(96, 64),
                               pixel_spacing_mm=(4.0, 4.0))

    first = geometry(10.0)
    result = render_preview(scene, case, volume_node, segmentation_node, structures, first)
    drr_node, masks_node = result["drr"], result["masks"]
    check(drr_node.GetName() == mrml.DRR_NODE_NAME, f"the DRR node is {drr_node.GetName()!r}")
    for node in (drr_node, masks_node):
        check(node.GetImageData().GetDimensions() == (96, 64, 1),
              f"{node.GetName()} is {node.GetImageData().GetDimensions()}, expected (96, 64, 1)")
        ijk_to_ras = mrml.volume_ijk_to_ras(node)
        check(np.allclose(ijk_to_ras, first.detector_ijk_to_ras(), atol=1e-6), f"{node.GetName()} is off the detector")
        for u, v in ((0, 0), (95, 0), (0, 63), (40, 30)):
            check(np.allclose((ijk_to_ras @ [u, v, 0, 1])[:3], first.pixel_center_ras(u, v), atol=1e-6),
                  f"{node.GetName()} pixel ({u}, {v}) is not the detector's")
    check(float(mrml.volume_array(drr_node).max()) > 0.0, "the DRR is blank")

    labels = mrml.volume_array(masks_node)[0]
    view_masks = result["view"].masks.cpu().numpy()
    check(result["view"].names == structures, f"rendered {result['view'].names}, asked for {structures}")
    present = set(np.unique(labels).tolist()) - {0}
    check(bool(present) and present <= set(range(1, len(structures) + 1)), f"labels {sorted(present)}")
    check(bool(np.array_equal(labels > 0, view_masks.any(axis=0))), "labels and masks cover different pixels")
    check(bool(np.all(labels[view_masks[-1]] == len(structures))), "the last structure is not over the others")
    color_node = masks_node.GetDisplayNode().GetColorNode()
    check(color_node.GetColorName(1) == structures[0], f"label 1 is named {color_node.GetColorName(1)!r}")
    check(result["model"].GetPolyData().GetNumberOfPoints() == 12, "no geometry model")

    prepared = case.case_volume(volume_node, segmentation_node, structures)
    classes = ("vtkMRMLScalarVolumeNode", "vtkMRMLModelNode", "vtkMRMLColorTableNode")
    counts = {name: scene.GetNumberOfNodesByClass(name) for name in classes}
    second = render_preview(scene, case, volume_node, segmentation_node, structures, geometry(-20.0))
    check(second["drr"] is drr_node and second["masks"] is masks_node, "a second preview made new nodes")
    check(case.case_volume(volume_node, segmentation_node, structures) is prepared, "the CT was prepared again")
    for name, count in counts.items():
        check(scene.GetNumberOfNodesByClass(name) == count, f"a second preview added a {name}")
    return result


def _small_generation(scene, output_dir: str, views: int, python_paths, nodes=None):
    """Start generating ``views`` 64-px views of two structures of the first sample case (loaded
    unless ``nodes`` gives (volume node, segmentation node)); returns (job, nodes)."""
    from .dataset.generation_command import GenerationOptions
    from .prepared_case import PreparedCase, start_generation

    nodes = nodes or _first_sample_case(scene)
    structures = [name for name, _color in mrml.segment_names_and_colors(nodes[1])][:2]
    options = GenerationOptions(views=views, seed=1, augmentation_preset="none", preset="ap",
                                detector_size_px=64, pixel_spacing_mm=6.4)
    return start_generation(PreparedCase(), *nodes, structures, output_dir, options, python_paths), nodes


def batch_generation_checks(scene, output_dir: str, python_paths, idle=None) -> None:
    """Generate two views in a subprocess (``prepared_case.start_generation``), then run it again.

    Checks: it ends with status 0, a manifest, a complete progress count and the exported inputs;
    the second run finds the set complete. ``idle`` is called while waiting (Slicer: processEvents).
    Needs PyTorch.
    """
    import os

    job, nodes = _small_generation(scene, output_dir, 2, python_paths)
    try:
        code = job.wait(timeout_s=900, idle=idle)
        check(code == 0, "\n".join(list(job.log)[-30:]))
        check(os.path.isfile(os.path.join(output_dir, "manifest.jsonl")), "no manifest.jsonl")
        check(job.total is not None and job.done == job.total, f"progress {job.done} of {job.total}")
        check(bool(os.listdir(os.path.join(output_dir, "inputs"))), "the inputs were not kept")
        job, _nodes = _small_generation(scene, output_dir, 2, python_paths, nodes)
        code = job.wait(timeout_s=300, idle=idle)
        check(code == 0 and job.done == job.total, "\n".join(list(job.log)[-30:]))
    finally:
        job.cancel(force=True)


def cancel_generation_checks(scene, output_dir: str, python_paths, idle=None) -> None:
    """Start a very long generation and cancel it once it runs: it stops, with a non-zero status."""
    import time

    job, _nodes = _small_generation(scene, output_dir, 100000, python_paths)
    try:
        deadline = time.monotonic() + 60
        while job.running and not job.log and job.total is None and time.monotonic() < deadline:
            job.poll()
            if idle:
                idle()
            time.sleep(0.1)
        check(job.running, "\n".join(job.log))
        job.cancel()
        code = job.wait(timeout_s=60, idle=idle)
        check(job.cancelled and code != 0 and job.process.poll() is not None, f"not cancelled (status {code})")
    finally:
        job.cancel(force=True)
