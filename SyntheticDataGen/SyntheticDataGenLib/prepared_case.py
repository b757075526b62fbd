"""The case the SyntheticDataGen module works on: a CT node and chosen segments, prepared once.

Rasterising segments onto the CT grid and preparing the CT take longer than rendering a view, so
a :class:`PreparedCase` keeps them while the nodes' data and the chosen structures stay the same
(``scene.content_key``). The live preview (:func:`render_preview`), the generator's isocentre and
the inputs that batch generation exports all come from it, so they agree. Nodes are read through
``scene.py`` only; this file does not import ``slicer``. World coordinates are RAS, mm.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence

from . import scene as mrml
from .errors import XreconInputError


def generator_extend_body_mm() -> float:
    """How far ``xrecon generate`` continues the body past the scan's ends (mm), so that a
    preview looks like the generated views."""
    from .dataset.generation import GenerationSettings

    defaults = {field.name: field.default for field in dataclasses.fields(GenerationSettings)}
    return float(defaults.get("extend_body_mm", 0.0))


class PreparedCase:
    """The CT image, the chosen segments' label map and the renderable ``CaseVolume`` of a CT node
    and its segmentation, kept while unchanged.

    ``structures`` arguments: None means every segment, [] none, else the names in that order.
    """

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget what was prepared."""
        self._key = self._inputs = self._case = None

    def inputs(self, volume_node, segmentation_node, structures: Sequence[str] | None) -> tuple:
        """(CT SimpleITK image, label map image or None, structure names); label k + 1 is
        structure k (``scene.segment_labelmap``). Transformed nodes are refused."""
        mrml.check_no_transform(volume_node)
        structures = list(structures) if structures is not None else None
        key = (mrml.content_key(volume_node, segmentation_node), structures)
        if self._inputs is not None and key == self._key:
            return self._inputs
        ct_image = mrml.volume_image(volume_node)
        label_image, names = None, []
        if segmentation_node and (structures is None or structures):
            mrml.check_no_transform(segmentation_node)
            label_image, names, overlaps = mrml.segment_labelmap(segmentation_node, volume_node, structures, ct_image)
            if overlaps:
                logging.warning(f"SyntheticDataGen: {', '.join(overlaps)} overlap earlier structures; "
                                "the shared voxels belong to the later structure")
        # Rasterising may have added a binary labelmap to the segmentation: key what is there now
        self._key = (mrml.content_key(volume_node, segmentation_node), structures)
        self._inputs, self._case = (ct_image, label_image, names), None
        return self._inputs

    def case_volume(self, volume_node, segmentation_node, structures: Sequence[str] | None):
        """The CT and the structures' masks ready to render (``projection.view.CaseVolume``), with
        the body continued past the scan's ends as the generator does. Needs PyTorch."""
        ct_image, label_image, names = self.inputs(volume_node, segmentation_node, structures)
        if self._case is None:
            from .cases.labels import Segmentation
            from .projection.view import CaseVolume

            segmentation = (Segmentation([label_image], {name: (0, index + 1) for index, name in enumerate(names)})
                            if names else None)
            present = segmentation.select(None) if segmentation else []
            self._case = CaseVolume.from_ct(ct_image, segmentation, present, extend_body_mm=generator_extend_body_mm())
        return self._case

    def isocenter_ras(self, volume_node, segmentation_node, structures: Sequence[str] | None) -> list[float]:
        """The isocentre (RAS mm) ``xrecon generate`` uses for these inputs: the centre of the
        chosen structures, or of the CT when there are none."""
        if not segmentation_node or (structures is not None and not structures):
            return mrml.volume_center_ras(volume_node)
        import SimpleITK as sitk

        from .cases.case_info import structures_centre_ras

        ct_image, label_image, _names = self.inputs(volume_node, segmentation_node, structures)
        masks = [sitk.GetArrayViewFromImage(label_image) != 0] if label_image is not None else []
        return [float(x) for x in structures_centre_ras(ct_image, masks)]

    def export_inputs(self, volume_node, segmentation_node, structures: Sequence[str], folder: str):
        """Write the CT and the structures (the label map the preview renders) with its table into
        ``folder`` for ``xrecon generate`` (``dataset.generation_inputs.write_generation_inputs``:
        unchanged files are left alone, a dataset made from other data is refused). Returns its
        ``GenerationInputs``."""
        from .dataset.generation_inputs import input_file_stem, write_generation_inputs

        ct_image, label_image, names = self.inputs(volume_node, segmentation_node, list(structures))
        if label_image is None:
            raise XreconInputError("Select at least one structure")
        return write_generation_inputs(ct_image, label_image, names, folder, input_file_stem(volume_node.GetName()))


def describe_nodes(volume_node, segmentation_node) -> dict:
    """``cases.case_info.describe_case`` of a CT node and every segment rasterised on its grid:
    "ct" (size, spacing_mm, origin_ras_mm, direction_ras, hu_range) and "structures" ({name:
    voxels, volume_ml, bounds_ras_mm})."""
    from .cases.case_info import describe_case
    from .cases.labels import Segmentation

    if not volume_node or not segmentation_node:
        raise XreconInputError("A CT volume and a segmentation are required")
    ct_image = mrml.volume_image(volume_node)
    masks = mrml.segment_mask_images(segmentation_node, volume_node, None, ct_image)
    return describe_case(ct_image, Segmentation.from_masks(masks) if masks else None)


def render_preview(scene, case: PreparedCase, volume_node, segmentation_node, structures: Sequence[str] | None,
                   geometry) -> dict:
    """Render a geometry's DRR and the structures' masks into the preview nodes of ``scene``.

    Updates (creating once) the scalar volume "DRR preview" (line integral, dimensionless), the
    label map "DRR preview masks" (label k + 1 for structure k, later over earlier, coloured as
    the segments) and the model "X-ray geometry", all on the detector in RAS
    (``scene.update_drr_node``, ``update_masks_node``, ``update_geometry_model``). Returns
    {"drr", "masks", "model": nodes, "view": the rendered ``View``, "seconds": render time,
    without preparing the case}.
    """
    from .projection.view import render_view

    if not volume_node:
        raise XreconInputError("A CT volume is required")
    prepared = case.case_volume(volume_node, segmentation_node, structures)
    start = time.perf_counter()
    view = render_view(prepared, geometry)
    seconds = time.perf_counter() - start
    colors = dict(mrml.segment_names_and_colors(segmentation_node))
    return {"drr": mrml.update_drr_node(scene, view.line_integral.detach().cpu().numpy(), geometry),
            "masks": mrml.update_masks_node(scene, view.masks.detach().cpu().numpy(), geometry, view.names, colors),
            "model": mrml.update_geometry_model(scene, geometry), "view": view, "seconds": seconds}


def start_generation(case: PreparedCase, volume_node, segmentation_node, structures: Sequence[str], output_dir: str,
                     options, python_paths: Sequence[str]):
    """Export the inputs into ``OUTPUT/inputs/`` and start ``xrecon generate`` in a subprocess.

    ``options`` is a ``dataset.generation_command.GenerationOptions``; the command runs with this
    Python (inside Slicer: PythonSlicer) and ``python_paths`` on PYTHONPATH. The dataset keeps
    what it was made from, so a later run with the same inputs and options continues it.
    Returns the running ``dataset.generation_job.GenerationJob``.
    """
    import os
    import shlex

    from .dataset.generation_command import generate_arguments, generation_environment, python_executable
    from .dataset.generation_job import GenerationJob

    if not volume_node or not segmentation_node:
        raise XreconInputError("Select a CT volume and its segmentation")
    if not output_dir:
        raise XreconInputError("Select an output folder")
    structures = list(structures)
    if not structures:
        raise XreconInputError("Select at least one structure to generate")
    output_dir = os.path.abspath(os.path.expanduser(str(output_dir)))
    inputs = case.export_inputs(volume_node, segmentation_node, structures, os.path.join(output_dir, "inputs"))
    args = generate_arguments(python_executable(), inputs, structures, output_dir, options)
    logging.info("SyntheticDataGen: " + shlex.join(args))
    return GenerationJob(args, env=generation_environment(python_paths), cwd=output_dir, output_dir=output_dir)
