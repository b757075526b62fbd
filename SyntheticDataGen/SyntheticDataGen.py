"""SyntheticDataGen: synthetic radiographs and exact training targets from CT (3D Slicer module).

This file stays thin: it turns GUI state into calls of ``SyntheticDataGenLib`` (Slicer-free,
also used by the ``xrecon`` command) and MRML nodes into arrays/images. All computation lives
in the Lib; batch generation runs the ``xrecon generate`` command in a subprocess, so the GUI
never waits for it. World coordinates are Slicer's RAS, in millimetres.
"""

import logging
import shutil
from typing import Annotated, Optional

import vtk

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin
from slicer.parameterNodeWrapper import (
    parameterNodeWrapper,
    Choice,
    WithinRange,
)

from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode

# The MRML work is in the Lib; the Widget finds the preview's nodes by their role.
from SyntheticDataGenLib import scene
from SyntheticDataGenLib.scene import ROLE_ATTRIBUTE
from SyntheticDataGenWidgets.case_panel import CasePanel
from SyntheticDataGenWidgets.generation_panel import GenerationPanel
from SyntheticDataGenWidgets.live_preview import LivePreview
from SyntheticDataGenWidgets.path_fields import PathFields
from SyntheticDataGenWidgets.python_packages import ensureTorch
from SyntheticDataGenWidgets.structure_checklist import StructureChecklist, segmentNames, structureList
from SyntheticDataGenWidgets.views import showOnRedView

#: View presets of ``SyntheticDataGenLib.projection.geometry.preset_geometry`` (the .ui combo box lists the same).
PRESETS = ["ap", "pa", "lateral-left", "lateral-right"]
#: Augmentation presets of ``xrecon generate --preset``.
AUGMENTATION_PRESETS = ["none", "light", "heavy"]

#
# SyntheticDataGen
#


class SyntheticDataGen(ScriptedLoadableModule):
    """Module description shown in Slicer's module list and help panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Synthetic Data Generation")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Reconstruction")]
        self.parent.dependencies = []
        self.parent.contributors = ["xrecon developers"]
        self.parent.helpText = _("""
Render synthetic radiographs (digitally reconstructed radiographs, DRRs) from a CT volume and its bone
segmentation, for a calibrated X-ray geometry, together with exact training targets: per-bone masks,
dual-face depth maps and projected landmarks.
<ul>
<li><b>Inputs</b>: the CT (Hounsfield units), its segmentation and the structures (segments) to use.
<b>Describe case</b> measures every segment on the CT grid.</li>
<li><b>Projection geometry</b>: a view preset, C-arm angles (LAO/RAO, cranial/caudal), distances and
detector; the isocentre is the centre of the CT. <b>Show geometry</b> draws the source, the detector and
the ray frustum in the 3D view.</li>
<li><b>Preview</b>: the DRR of the current geometry with the structures' masks overlaid, shown in the
Red slice view as the radiograph is read and on the detector plane in 3D. With <i>Live preview</i> on,
it follows every change. Needs PyTorch (the PyTorch extension).</li>
<li><b>Batch generation</b>: a training set (<code>xrecon generate</code>) written into a folder by a
separate process: the GUI stays usable, and a cancelled run continues where it stopped. The augmentation
preset's groups (C-arm pose and framing, X-ray physics, detector style, anatomy deformation, shape-model
anatomy) can each be scaled: 0 turns a group off, 1 is the preset.</li>
</ul>
Coordinates are RAS, in mm.
See the <a href="https://github.com/xrecon/SlicerXRecon#SyntheticDataGen">module documentation</a>.
""")
        self.parent.acknowledgementText = _("""
Developed by the xrecon developers. Built on 3D Slicer, SimpleITK, PyTorch and MONAI.
""")


#
# SyntheticDataGenParameterNode
#


@parameterNodeWrapper
class SyntheticDataGenParameterNode:
    """
    The parameters of the module, saved with the scene.

    inputVolume - CT volume (Hounsfield units).
    inputSegmentation - bone segmentation of that CT, one segment per structure.
    structures - the segments to render, comma-separated names (the GUI's checkable list).
    preset - radiographic view preset: ap, pa, lateral-left or lateral-right.
    laoDegrees - C-arm rotation about the patient's long axis, degrees (positive LAO, negative RAO).
    cranialDegrees - C-arm tilt, degrees (positive cranial, negative caudal).
    sourceToIsocenterMm - distance from the X-ray source to the isocentre (the CT's centre), mm.
    sourceToDetectorMm - distance from the source to the detector plane, mm.
    detectorSizePx - detector width and height, pixels.
    pixelSpacingMm - detector pixel pitch, mm.
    livePreview - re-render the preview whenever an input or the geometry changes.
    outputDirectory - folder of the generated training set.
    views - number of views (samples) to generate.
    seed - random seed of the generator (same seed, same data set).
    augmentationPreset - augmentation strength of the generator: none, light or heavy.
    geometricStrength, physicsStrength, styleStrength, anatomyStrength, shapeStrength - how strongly
        each group of the preset is applied (0 off, 1 the preset's; ``xrecon generate --geometric`` ...).
    """

    inputVolume: vtkMRMLScalarVolumeNode
    inputSegmentation: vtkMRMLSegmentationNode
    structures: str = ""
    preset: Annotated[str, Choice(PRESETS)] = "ap"
    laoDegrees: Annotated[float, WithinRange(-90, 90)] = 0.0
    cranialDegrees: Annotated[float, WithinRange(-45, 45)] = 0.0
    sourceToIsocenterMm: Annotated[float, WithinRange(50, 3000)] = 900.0
    sourceToDetectorMm: Annotated[float, WithinRange(100, 3000)] = 1100.0
    detectorSizePx: Annotated[int, WithinRange(16, 2048)] = 256
    pixelSpacingMm: Annotated[float, WithinRange(0.05, 10)] = 1.6
    livePreview: bool = False
    outputDirectory: str = ""
    views: Annotated[int, WithinRange(1, 1000000)] = 100
    seed: Annotated[int, WithinRange(0, 2147483647)] = 0
    augmentationPreset: Annotated[str, Choice(AUGMENTATION_PRESETS)] = "light"
    geometricStrength: Annotated[float, WithinRange(0, 10)] = 1.0
    physicsStrength: Annotated[float, WithinRange(0, 10)] = 1.0
    styleStrength: Annotated[float, WithinRange(0, 10)] = 1.0
    anatomyStrength: Annotated[float, WithinRange(0, 10)] = 1.0
    shapeStrength: Annotated[float, WithinRange(0, 10)] = 1.0


#
# SyntheticDataGenWidget
#


class SyntheticDataGenWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """GUI of the module: binds the .ui to the parameter node and calls the logic."""

    def __init__(self, parent=None) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)  # needed for parameter node observation
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._previewShown = False  # the first preview also fits the views
        # the parts of the GUI, each bound to its widgets (SyntheticDataGenWidgets)
        self.structures = self.paths = self.case = self.preview = self.generation = None

    def setup(self) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.setup(self)

        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SyntheticDataGen.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)

        # The .ui connects the top-level qMRMLWidget's mrmlSceneChanged(vtkMRMLScene*) signal
        # to the setMRMLScene(vtkMRMLScene*) slot of each node combo box.
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = SyntheticDataGenLogic()

        # Update the parameter node when the scene is closed
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        # Buttons
        self.ui.describeButton.connect("clicked(bool)", self.onDescribeButton)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.previewButton.connect("clicked(bool)", self.onPreviewButton)
        self.ui.generateButton.connect("clicked(bool)", self.onGenerateButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)

        # Widgets synchronised by hand (parameterNodeWrapper binds neither a checkable list nor a
        # ctkPathLineEdit to a str)
        self.structures = StructureChecklist(self.ui, self._updateButtonStates)
        self.paths = PathFields({"outputDirectory": self.ui.outputDirectoryPathLineEdit})
        self.case = CasePanel(self.ui)
        self.preview = LivePreview(self.ui, self._previewKey, self._renderPreview)
        self.generation = GenerationPanel(self.ui, self._updateButtonStates)

        # Make sure parameter node is initialized (needed for module reload)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        """Called when the application closes and the module widget is destroyed."""
        if self.preview:
            self.preview.stop()
        if self.generation:
            self.generation.cleanup()
        if self.structures:
            self.structures.removeObservers()
        self.removeObservers()

    def enter(self) -> None:
        """Called each time the user opens this module."""
        self.initializeParameterNode()

    def exit(self) -> None:
        """Called each time the user opens a different module."""
        # Do not react to parameter node changes (GUI is updated when the user enters the module)
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self.preview.stop()

    def onSceneStartClose(self, caller, event) -> None:
        """Called just before the scene is closed."""
        self.setParameterNode(None)
        self._clearResults()

    def onSceneEndClose(self, caller, event) -> None:
        """Called just after the scene is closed."""
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        """Ensure parameter node exists and observed."""
        self.setParameterNode(self.logic.getParameterNode())

        # Select default inputs if nothing is selected yet, to save a few clicks
        if not self._parameterNode.inputVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if (firstVolumeNode and not firstVolumeNode.IsA("vtkMRMLLabelMapVolumeNode")
                    and not firstVolumeNode.GetAttribute(ROLE_ATTRIBUTE)):
                self._parameterNode.inputVolume = firstVolumeNode
        if not self._parameterNode.inputSegmentation:
            firstSegmentationNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSegmentationNode")
            if firstSegmentationNode:
                self._parameterNode.inputSegmentation = firstSegmentationNode

    def setParameterNode(self, inputParameterNode: Optional[SyntheticDataGenParameterNode]) -> None:
        """Set and observe the parameter node; the GUI follows it through connectGui."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self._parameterNode = inputParameterNode
        for part in (self.structures, self.paths, self.preview):
            part.setParameterNode(inputParameterNode)
        if self._parameterNode:
            # Widgets carrying the Qt dynamic property "SlicerParameterName" are bound here.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self._onParameterNodeModified()

    def _onParameterNodeModified(self, caller=None, event=None) -> None:
        self.structures.update()
        self.paths.update()
        self._updateButtonStates()
        if self.parent.isEntered:
            self.preview.schedule()

    # ------------------------------------------------------------------ state of the buttons

    def _updateButtonStates(self, caller=None, event=None) -> None:
        p = self._parameterNode
        hasVolume = bool(p and p.inputVolume)
        hasSegmentation = bool(p and p.inputSegmentation)
        hasStructures = bool(self.structures.selected())

        self.ui.describeButton.enabled = hasVolume and hasSegmentation
        self.ui.describeButton.toolTip = (
            _("Measure every segment on the CT grid: voxel count, volume and RAS bounding box.")
            if hasVolume and hasSegmentation else _("Select a CT volume and its segmentation."))
        self.ui.applyButton.enabled = hasVolume
        self.ui.applyButton.toolTip = (
            _("Place the X-ray source and detector (isocentre at the centre of the selected structures, as the "
              "generator has it) and draw them in the 3D view.")
            if hasVolume else _("Select a CT volume."))
        self.ui.previewButton.enabled = hasVolume
        self.ui.previewButton.toolTip = (
            _("Render the DRR of the current geometry with the selected structures' masks.")
            if hasVolume else _("Select a CT volume."))

        missing = [what for what, absent in ((_("a CT volume"), not hasVolume), (_("a segmentation"), not hasSegmentation),
                                             (_("at least one structure"), hasSegmentation and not hasStructures),
                                             (_("an output folder"), not (p and p.outputDirectory))) if absent]
        self.generation.updateButtons(missing)

    def _clearResults(self) -> None:
        self.case.clear()
        self.preview.clear()
        self._previewShown = False
        self.structures.clear()
        self.logic.clearCache()

    # ------------------------------------------------------------------ describe case

    def onDescribeButton(self) -> None:
        """Measure the segments of the selected segmentation on the CT grid and show them."""
        with slicer.util.tryWithErrorDisplay(_("Failed to describe the case."), waitCursor=True):
            info = self.logic.describe(self._parameterNode.inputVolume, self._parameterNode.inputSegmentation)
            self.case.showCaseInfo(info)

    # ------------------------------------------------------------------ geometry

    def _geometryFromParameters(self):
        """The base view of the generator: the preset about the centre of the selected structures."""
        p = self._parameterNode
        return self.logic.geometry(p.inputVolume, p.inputSegmentation, self.structures.selected(), p)

    def onApplyButton(self) -> None:
        """Compute the projection geometry, show its key numbers and draw it in the 3D view."""
        with slicer.util.tryWithErrorDisplay(_("Failed to compute the projection geometry."), waitCursor=True):
            geometry = self._geometryFromParameters()
            self.case.showGeometry(geometry)
            self.logic.updateGeometryModel(geometry)

    # ------------------------------------------------------------------ preview

    def _previewKey(self):
        p = self._parameterNode
        return (p.inputVolume.GetID() if p.inputVolume else None,
                p.inputSegmentation.GetID() if p.inputSegmentation else None,
                tuple(self.structures.selected()), p.preset, p.laoDegrees, p.cranialDegrees,
                p.sourceToIsocenterMm, p.sourceToDetectorMm, p.detectorSizePx, p.pixelSpacingMm)

    def onPreviewButton(self) -> None:
        """Render the preview now (also when live preview is off)."""
        with slicer.util.tryWithErrorDisplay(_("Failed to render the preview."), waitCursor=True):
            self.preview.renderNow()

    def _renderPreview(self) -> str:
        """Render the DRR preview of the current parameters; returns the status line."""
        p = self._parameterNode
        geometry = self._geometryFromParameters()
        self.case.showGeometry(geometry)
        result = self.logic.preview(p.inputVolume, p.inputSegmentation, self.structures.selected(), geometry,
                                    fit=not self._previewShown)
        self._previewShown = True
        visible = sum(1 for mask in result["view"].masks if bool(mask.any()))
        return _("DRR {width}\u00d7{height} px rendered in {seconds:.2f} s; {visible} of {count} structures on the "
                 "detector.").format(width=geometry.width, height=geometry.height, seconds=result["seconds"],
                                     visible=visible, count=len(result["view"].names))

    # ------------------------------------------------------------------ batch generation

    def onGenerateButton(self) -> None:
        """Start ``xrecon generate`` in a subprocess; the generation panel follows its progress."""
        if self.generation.running:
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to start the generation."), waitCursor=True):
            p = self._parameterNode
            self.generation.starting()
            slicer.app.processEvents()
            try:
                job = self.logic.startGeneration(p.inputVolume, p.inputSegmentation, self.structures.selected(),
                                                 p.outputDirectory, p)
            except Exception:
                self.generation.startFailed()
                raise
            self.ui.outputDirectoryPathLineEdit.addCurrentPathToHistory()
            self.generation.follow(job, p.views)

    def onCancelButton(self) -> None:
        self.generation.cancel()


#
# SyntheticDataGenLogic
#


class SyntheticDataGenLogic(ScriptedLoadableModuleLogic):
    """Adapters from MRML nodes and GUI values to ``SyntheticDataGenLib``; usable without the GUI.

    The case work (rasterised segments, the prepared CT, preview, export) is
    ``SyntheticDataGenLib.prepared_case``; the MRML nodes are ``SyntheticDataGenLib.scene``'s.
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        from SyntheticDataGenLib.prepared_case import PreparedCase

        self.case = PreparedCase()  # kept while the CT, the segments and the structures stay the same
        self._shownDetectorExtent = None

    def getParameterNode(self):
        return SyntheticDataGenParameterNode(super().getParameterNode())

    def loadCase(self, ctPath, labelsPath, tablePath, name: Optional[str] = None):
        """Load a CT and its label map (ids named by a CSV ``id,structure``) as (volume node,
        segmentation node); on failure the scene is left as it was (``scene.load_case``)."""
        return scene.load_case(slicer.mrmlScene, ctPath, labelsPath, tablePath, name)

    def loadSampleCase(self, name: str):
        """Load a bundled sample case (``cases.sample_data``): returns (volumeNode, segmentationNode)."""
        from SyntheticDataGenLib.cases.sample_data import sample_case

        case = sample_case(name)
        return self.loadCase(case.ct_path, case.labels_path, case.table_path, name=name)

    @staticmethod
    def sampleCaseNames() -> list:
        from SyntheticDataGenLib.cases.sample_data import list_sample_cases

        return list(list_sample_cases())

    @staticmethod
    def describe(volumeNode, segmentationNode) -> dict:
        """The CT and every segment measured on its grid: ``prepared_case.describe_nodes``."""
        from SyntheticDataGenLib.prepared_case import describe_nodes

        return describe_nodes(volumeNode, segmentationNode)

    def geometry(self, volumeNode, segmentationNode, structures, p: SyntheticDataGenParameterNode):
        """The generator's base view (``projection.geometry.preset_geometry``) for the parameter
        node's preset, angles (degrees), distances (mm) and detector, about the centre of the
        structures (the isocentre ``xrecon generate`` uses)."""
        if not volumeNode:
            raise ValueError("A CT volume is required")
        from SyntheticDataGenLib.projection.geometry import preset_geometry

        return preset_geometry(
            p.preset, isocenter_ras_mm=self.case.isocenter_ras(volumeNode, segmentationNode, structures),
            source_to_isocenter_mm=p.sourceToIsocenterMm, source_to_detector_mm=p.sourceToDetectorMm,
            size_px=(p.detectorSizePx, p.detectorSizePx), pixel_spacing_mm=(p.pixelSpacingMm, p.pixelSpacingMm),
            lao_deg=p.laoDegrees, cranial_deg=p.cranialDegrees)

    def clearCache(self) -> None:
        self.case.clear()
        self._shownDetectorExtent = None

    def preview(self, volumeNode, segmentationNode, structures, geometry, show: bool = True, fit: bool = True) -> dict:
        """Render the preview (``prepared_case.render_preview``: "DRR preview", its masks, the
        geometry model) and, with ``show``, turn the Red slice view to the detector plane; ``fit``
        also fits the slice and 3D views. Returns {"drr", "masks", "model", "view", "seconds"}."""
        from SyntheticDataGenLib.prepared_case import render_preview

        ensureTorch()
        result = render_preview(slicer.mrmlScene, self.case, volumeNode, segmentationNode, structures, geometry)
        if show:
            extent = (tuple(geometry.size_px), tuple(float(s) for s in geometry.pixel_spacing_mm))
            showOnRedView(result["drr"], result["masks"], geometry, segmentationNode, fit=fit,
                          fitSlice=fit or extent != self._shownDetectorExtent)
            self._shownDetectorExtent = extent
        return result

    def updateGeometryModel(self, geometry):
        """Draw the geometry (source, detector, frustum) in the 3D view: ``scene.update_geometry_model``."""
        return scene.update_geometry_model(slicer.mrmlScene, geometry)

    def startGeneration(self, volumeNode, segmentationNode, structures, outputDirectory: str,
                        p: SyntheticDataGenParameterNode):
        """Export the inputs into ``OUTPUT/inputs/`` and start ``xrecon generate`` with the parameter
        node's options (``prepared_case.start_generation``); returns its ``GenerationJob``."""
        from SyntheticDataGenLib.dataset.generation_command import GenerationOptions
        from SyntheticDataGenLib.prepared_case import start_generation
        from SyntheticDataGenWidgets.module_paths import modulePythonPaths

        options = GenerationOptions(
            views=p.views, seed=p.seed, augmentation_preset=p.augmentationPreset, preset=p.preset, lao_deg=p.laoDegrees,
            cranial_deg=p.cranialDegrees, source_to_isocenter_mm=p.sourceToIsocenterMm,
            source_to_detector_mm=p.sourceToDetectorMm, detector_size_px=p.detectorSizePx,
            pixel_spacing_mm=p.pixelSpacingMm, geometric_strength=p.geometricStrength,
            physics_strength=p.physicsStrength, style_strength=p.styleStrength, anatomy_strength=p.anatomyStrength,
            shape_strength=p.shapeStrength)
        return start_generation(self.case, volumeNode, segmentationNode, structures, outputDirectory, options,
                                modulePythonPaths())


#
# SyntheticDataGenTest
#


class SyntheticDataGenTest(ScriptedLoadableModuleTest):
    """Self-test of the module; runs inside Slicer (Reload and Test, or ctest). The bodies are plain
    functions of an MRML scene in ``SyntheticDataGenLib.self_test``, which pytest also runs
    against slicer-core; what needs the application (parameter node, Red slice view) is here."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        """Run all tests of this module."""
        import importlib.util
        import tempfile

        from SyntheticDataGenLib import self_test
        from SyntheticDataGenWidgets.module_paths import modulePythonPaths

        for name, body in (("Parameter node defaults", self.parameterNodeDefaults),
                           ("Loading a sample case", self_test.sample_case_checks),
                           ("Describing a sample case", self_test.describe_checks),
                           ("Preset geometries", self_test.preset_geometry_checks),
                           ("X-ray geometry in 3D", self_test.geometry_model_checks)):
            self.setUp()
            self.delayDisplay(name)
            body(slicer.mrmlScene)
        if importlib.util.find_spec("torch") is None:
            logging.warning("SyntheticDataGen self-test: PyTorch is not installed (PyTorch extension); "
                            "the preview and generation tests are skipped")
            return
        self.setUp()
        self.delayDisplay("DRR preview of a sample case in the Red slice view")
        self.previewInRedView()
        paths = modulePythonPaths()
        for name, body in (("Batch generation in a subprocess", self_test.batch_generation_checks),
                           ("Cancelling a batch generation", self_test.cancel_generation_checks)):
            self.setUp()
            self.delayDisplay(name)
            folder = tempfile.mkdtemp(prefix="SyntheticDataGenTest-")
            try:
                body(slicer.mrmlScene, folder, paths, idle=slicer.app.processEvents)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        self.delayDisplay("Test passed")

    def parameterNodeDefaults(self, _scene):
        from SyntheticDataGenLib.augmentation.ladder import PRESETS as LIB_AUGMENTATION_PRESETS
        from SyntheticDataGenLib.projection.geometry import PRESETS as LIB_PRESETS

        self.assertEqual(PRESETS, list(LIB_PRESETS))  # the combo box choices match the Lib's presets
        self.assertEqual(AUGMENTATION_PRESETS, list(LIB_AUGMENTATION_PRESETS))
        parameterNode = SyntheticDataGenLogic().getParameterNode()
        self.assertEqual((parameterNode.preset, parameterNode.laoDegrees, parameterNode.cranialDegrees), ("ap", 0.0, 0.0))
        strengths = [parameterNode.geometricStrength, parameterNode.physicsStrength, parameterNode.styleStrength,
                     parameterNode.anatomyStrength, parameterNode.shapeStrength]
        self.assertEqual(strengths, [1.0] * 5)  # the preset as it is
        self.assertEqual((parameterNode.sourceToIsocenterMm, parameterNode.sourceToDetectorMm), (900.0, 1100.0))
        self.assertEqual((parameterNode.detectorSizePx, parameterNode.pixelSpacingMm), (256, 1.6))
        self.assertFalse(parameterNode.livePreview)
        self.assertEqual(parameterNode.augmentationPreset, "light")
        parameterNode.preset = "lateral-left"
        parameterNode.structures = "femur_left,femur_right"
        self.assertEqual(SyntheticDataGenLogic().getParameterNode().preset, "lateral-left")
        self.assertEqual(structureList(SyntheticDataGenLogic().getParameterNode().structures), ["femur_left", "femur_right"])
        with self.assertRaises(ValueError):
            parameterNode.cranialDegrees = 60.0  # outside WithinRange(-45, 45)
        with self.assertRaises(ValueError):
            parameterNode.augmentationPreset = "extreme"

    def previewInRedView(self):
        """The Logic's preview (the Lib's, checked by ``self_test.preview_checks``) in the Red view."""
        logic = SyntheticDataGenLogic()
        volumeNode, segmentationNode = logic.loadSampleCase(logic.sampleCaseNames()[0])
        structures = segmentNames(segmentationNode)[:3]
        parameterNode = logic.getParameterNode()
        parameterNode.detectorSizePx, parameterNode.pixelSpacingMm = 64, 6.0
        result = logic.preview(volumeNode, segmentationNode, structures,
                               logic.geometry(volumeNode, segmentationNode, structures, parameterNode))
        compositeNode = slicer.app.applicationLogic().GetSliceLogicByLayoutName("Red").GetSliceCompositeNode()
        self.assertEqual(compositeNode.GetBackgroundVolumeID(), result["drr"].GetID())
        self.assertEqual(compositeNode.GetLabelVolumeID(), result["masks"].GetID())
        model = logic.updateGeometryModel(logic.geometry(volumeNode, segmentationNode, structures, parameterNode))
        self.assertIs(model, result["model"])  # Apply redraws the preview's geometry model
