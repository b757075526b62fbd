"""SyntheticDataGen: synthetic radiographs and exact training targets from CT (3D Slicer module).

This file stays thin: it turns GUI state into calls of ``SyntheticDataGenLib`` (Slicer-free,
also used by the ``xrecon`` command) and MRML nodes into arrays/images. All computation lives
in the Lib. World coordinates are Slicer's RAS, in millimetres.
"""

import logging
from typing import Annotated, Optional

import qt
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

#: View presets of ``SyntheticDataGenLib.geometry.preset_geometry`` (the .ui combo box lists the same).
PRESETS = ["ap", "pa", "lateral-left", "lateral-right"]


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
Render synthetic radiographs (digitally reconstructed radiographs) from a CT volume and its bone
segmentation, for a calibrated X-ray geometry, together with exact training targets: per-bone masks,
dual-face depth maps and projected landmarks.
<p>Currently available: <b>Describe case</b> measures every segment on the CT grid, and
<b>Compute geometry</b> places the X-ray source and detector for a view preset and C-arm angles
(LAO/RAO, cranial/caudal) with the isocentre at the centre of the CT. Coordinates are RAS, in mm.</p>
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
    preset - radiographic view preset: ap, pa, lateral-left or lateral-right.
    laoDegrees - C-arm rotation about the patient's long axis, degrees (positive LAO, negative RAO).
    cranialDegrees - C-arm tilt, degrees (positive cranial, negative caudal).
    """

    inputVolume: vtkMRMLScalarVolumeNode
    inputSegmentation: vtkMRMLSegmentationNode
    preset: Annotated[str, Choice(PRESETS)] = "ap"
    laoDegrees: Annotated[float, WithinRange(-90, 90)] = 0.0
    cranialDegrees: Annotated[float, WithinRange(-45, 45)] = 0.0


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

        table = self.ui.structuresTableWidget
        table.setColumnCount(3)
        table.setHorizontalHeaderLabels([_("Structure"), _("Voxels"), _("Volume (ml)")])

        # Make sure parameter node is initialized (needed for module reload)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        """Called when the application closes and the module widget is destroyed."""
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
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtonStates)

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
            if firstVolumeNode and not firstVolumeNode.IsA("vtkMRMLLabelMapVolumeNode"):
                self._parameterNode.inputVolume = firstVolumeNode
        if not self._parameterNode.inputSegmentation:
            firstSegmentationNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSegmentationNode")
            if firstSegmentationNode:
                self._parameterNode.inputSegmentation = firstSegmentationNode

    def setParameterNode(self, inputParameterNode: Optional[SyntheticDataGenParameterNode]) -> None:
        """Set and observe the parameter node; the GUI follows it through connectGui."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtonStates)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # Widgets carrying the Qt dynamic property "SlicerParameterName" are bound here.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtonStates)
        self._updateButtonStates()

    def _updateButtonStates(self, caller=None, event=None) -> None:
        hasVolume = bool(self._parameterNode and self._parameterNode.inputVolume)
        hasSegmentation = bool(self._parameterNode and self._parameterNode.inputSegmentation)
        self.ui.describeButton.enabled = hasVolume and hasSegmentation
        self.ui.describeButton.toolTip = (
            _("Measure every segment on the CT grid: voxel count, volume and RAS bounding box.")
            if hasVolume and hasSegmentation else _("Select a CT volume and its segmentation."))
        self.ui.applyButton.enabled = hasVolume
        self.ui.applyButton.toolTip = (
            _("Place the X-ray source and detector, with the isocentre at the centre of the CT.")
            if hasVolume else _("Select a CT volume."))

    def _clearResults(self) -> None:
        self.ui.structuresTableWidget.setRowCount(0)
        self.ui.caseStatusLabel.text = ""
        self.ui.geometryLabel.text = ""

    def onDescribeButton(self) -> None:
        """Measure the segments of the selected segmentation on the CT grid and show them."""
        with slicer.util.tryWithErrorDisplay(_("Failed to describe the case."), waitCursor=True):
            info = self.logic.describe(self._parameterNode.inputVolume, self._parameterNode.inputSegmentation)
            self._showCaseInfo(info)

    def _showCaseInfo(self, info: dict) -> None:
        ct = info["ct"]
        size = "\u00d7".join(str(int(n)) for n in ct["size"])
        spacing = "\u00d7".join(f"{s:.2f}" for s in ct["spacing_mm"])
        low, high = ct["hu_range"]
        self.ui.caseStatusLabel.text = _("CT: {size} voxels, spacing {spacing} mm, HU {low:.0f} to {high:.0f}; {count} structures.").format(
            size=size, spacing=spacing, low=low, high=high, count=len(info["structures"]))

        table = self.ui.structuresTableWidget
        table.setSortingEnabled(False)
        table.setRowCount(len(info["structures"]))
        for row, (name, structure) in enumerate(info["structures"].items()):
            cells = [name, str(int(structure["voxels"])), f"{structure['volume_ml']:.2f}"]
            for column, text in enumerate(cells):
                item = qt.QTableWidgetItem(text)
                if column > 0:
                    item.setTextAlignment(qt.Qt.AlignRight | qt.Qt.AlignVCenter)
                table.setItem(row, column, item)
        table.resizeColumnsToContents()

    def onApplyButton(self) -> None:
        """Compute the projection geometry for the preset and angles and show its key numbers."""
        with slicer.util.tryWithErrorDisplay(_("Failed to compute the projection geometry."), waitCursor=True):
            p = self._parameterNode
            geometry = self.logic.geometry(p.inputVolume, p.preset, p.laoDegrees, p.cranialDegrees)
            summary = self.logic.geometrySummary(geometry)
            source = ", ".join(f"{x:.1f}" for x in summary["source_ras_mm"])
            self.ui.geometryLabel.text = _(
                "Source (RAS): ({source}) mm\n"
                "Source-to-detector distance (SID): {sid:.1f} mm\n"
                "Detector: {width}\u00d7{height} px at {su:.3f}\u00d7{sv:.3f} mm").format(
                    source=source, sid=summary["sid_mm"],
                    width=summary["size_px"][0], height=summary["size_px"][1],
                    su=summary["pixel_spacing_mm"][0], sv=summary["pixel_spacing_mm"][1])


#
# SyntheticDataGenLogic
#


class SyntheticDataGenLogic(ScriptedLoadableModuleLogic):
    """Turns MRML nodes into images/arrays and calls ``SyntheticDataGenLib``; usable without the GUI."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return SyntheticDataGenParameterNode(super().getParameterNode())

    # ------------------------------------------------------------------ case loading

    @staticmethod
    def readLabelTable(tablePath) -> dict:
        """Label table CSV (columns ``id,structure``) as {label id: structure name}."""
        from SyntheticDataGenLib.labels import read_label_table

        return {label: name for name, label in read_label_table(tablePath).items()}

    def loadCase(self, ctPath, labelsPath, tablePath, name: Optional[str] = None):
        """Load a CT and its label map (ids named by a CSV ``id,structure``) into the scene.

        Returns (volumeNode, segmentationNode). Each label present in the label map becomes one segment,
        named after its structure; the temporary label map node is removed again.
        """
        names = self.readLabelTable(tablePath)
        volumeNode = slicer.util.loadVolume(str(ctPath), {"name": name} if name else {})
        labelmapNode = segmentationNode = None
        try:
            labelmapNode = slicer.util.loadLabelVolume(str(labelsPath))
            segmentationNode = slicer.mrmlScene.AddNewNodeByClass(
                "vtkMRMLSegmentationNode", slicer.mrmlScene.GenerateUniqueName(f"{volumeNode.GetName()} labels"))
            segmentationNode.CreateDefaultDisplayNodes()
            segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
            if not slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode(labelmapNode, segmentationNode):
                raise RuntimeError(f"Could not import the label map {labelsPath} into a segmentation")
        except Exception:
            # Leave the scene as it was: no half-loaded case
            _removeNodeWithHelpers(segmentationNode)
            _removeNodeWithHelpers(volumeNode)
            raise
        finally:
            _removeNodeWithHelpers(labelmapNode)

        segmentation = segmentationNode.GetSegmentation()
        for index in range(segmentation.GetNumberOfSegments()):
            segment = segmentation.GetNthSegment(index)
            label = segment.GetLabelValue()
            if label in names:
                segment.SetName(names[label])
            else:
                segment.SetName(f"label_{label}")
                logging.warning(f"{labelsPath}: label {label} is not named in {tablePath}")
        return volumeNode, segmentationNode

    def loadSampleCase(self, name: str):
        """Load a bundled sample case (``SyntheticDataGenLib.sample_data``): returns (volumeNode, segmentationNode)."""
        from SyntheticDataGenLib.sample_data import sample_case

        case = sample_case(name)
        return self.loadCase(case.ct_path, case.labels_path, case.table_path, name=name)

    @staticmethod
    def sampleCaseNames() -> list:
        """Names of the bundled sample cases."""
        from SyntheticDataGenLib.sample_data import list_sample_cases

        return list(list_sample_cases())

    # ------------------------------------------------------------------ case description

    def describe(self, volumeNode, segmentationNode) -> dict:
        """Describe a CT and its segmentation: ``SyntheticDataGenLib.case_info.describe_case``.

        Every segment is rasterised on the CT grid. Returns a JSON-able dict with "ct" (size,
        spacing_mm, origin_ras_mm, direction_ras, hu_range) and "structures" ({name: voxels,
        volume_ml, bounds_ras_mm}).
        """
        if not volumeNode or not segmentationNode:
            raise ValueError("A CT volume and a segmentation are required")
        import numpy as np
        import SimpleITK as sitk
        import sitkUtils
        from SyntheticDataGenLib.case_info import describe_case
        from SyntheticDataGenLib.errors import XreconInputError
        from SyntheticDataGenLib.labels import Segmentation

        ctImage = sitkUtils.PullVolumeFromSlicer(volumeNode)
        masks = {}
        segmentation = segmentationNode.GetSegmentation()
        for index in range(segmentation.GetNumberOfSegments()):
            segmentId = segmentation.GetNthSegmentID(index)
            name = segmentation.GetSegment(segmentId).GetName()
            if name in masks:
                raise XreconInputError(f"Segment name '{name}' occurs twice in {segmentationNode.GetName()}; names must be unique")
            array = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, volumeNode)
            mask = sitk.GetImageFromArray((array > 0).astype(np.uint8))
            mask.CopyInformation(ctImage)
            masks[name] = mask
        return describe_case(ctImage, Segmentation.from_masks(masks) if masks else None)

    # ------------------------------------------------------------------ projection geometry

    @staticmethod
    def volumeBoundsRas(volumeNode) -> list:
        """RAS bounding box of the volume (voxel corners): [xmin, xmax, ymin, ymax, zmin, zmax] in mm."""
        bounds = [0.0] * 6
        volumeNode.GetRASBounds(bounds)
        return bounds

    @classmethod
    def volumeCenterRas(cls, volumeNode) -> list:
        """Centre of the volume's RAS bounding box, in mm."""
        b = cls.volumeBoundsRas(volumeNode)
        return [(b[0] + b[1]) / 2.0, (b[2] + b[3]) / 2.0, (b[4] + b[5]) / 2.0]

    def geometry(self, volumeNode, preset: str = "ap", laoDegrees: float = 0.0, cranialDegrees: float = 0.0):
        """Preset projection geometry (``SyntheticDataGenLib.geometry.ProjectionGeometry``) with the
        isocentre at the centre of the volume; angles in degrees (LAO and cranial positive)."""
        if not volumeNode:
            raise ValueError("A CT volume is required")
        from SyntheticDataGenLib.geometry import preset_geometry

        return preset_geometry(
            preset,
            isocenter_ras_mm=self.volumeCenterRas(volumeNode),
            lao_deg=float(laoDegrees),
            cranial_deg=float(cranialDegrees),
        )

    @staticmethod
    def geometrySummary(geometry) -> dict:
        """Key numbers of a projection geometry for display: source (RAS, mm), SID (mm: distance from
        the source to the detector plane), detector size (px) and pixel spacing (mm)."""
        return {
            "source_ras_mm": [float(x) for x in geometry.source_ras_mm],
            "sid_mm": float(geometry.source_to_detector_mm),
            "size_px": [int(n) for n in geometry.size_px],
            "pixel_spacing_mm": [float(s) for s in geometry.pixel_spacing_mm],
        }


def _removeNodeWithHelpers(node) -> None:
    """Remove a node and its display and storage nodes from the scene."""
    if node is None or node.GetScene() is None:
        return
    helpers = []
    if hasattr(node, "GetNumberOfDisplayNodes"):
        helpers += [node.GetNthDisplayNode(i) for i in range(node.GetNumberOfDisplayNodes())]
    if hasattr(node, "GetNumberOfStorageNodes"):
        helpers += [node.GetNthStorageNode(i) for i in range(node.GetNumberOfStorageNodes())]
    for helper in helpers:
        if helper is not None and helper.GetScene() is not None:
            slicer.mrmlScene.RemoveNode(helper)
    slicer.mrmlScene.RemoveNode(node)


#
# SyntheticDataGenTest
#


class SyntheticDataGenTest(ScriptedLoadableModuleTest):
    """Self-test of the module; runs inside Slicer (Reload and Test, or ctest)."""

    def setUp(self):
        """Reset the state: a scene clear is enough."""
        slicer.mrmlScene.Clear()

    def runTest(self):
        """Run all tests of this module."""
        self.setUp()
        self.test_ParameterNodeDefaults()
        self.setUp()
        self.test_LoadSampleCase()
        self.setUp()
        self.test_DescribeSampleCase()
        self.setUp()
        self.test_PresetGeometrySourceOutsideCT()

    def _loadFirstSampleCase(self):
        logic = SyntheticDataGenLogic()
        names = logic.sampleCaseNames()
        self.assertTrue(names, "no bundled sample case")
        volumeNode, segmentationNode = logic.loadSampleCase(names[0])
        return logic, names[0], volumeNode, segmentationNode

    def test_ParameterNodeDefaults(self):
        self.delayDisplay("Parameter node defaults")
        from SyntheticDataGenLib.geometry import PRESETS as LIB_PRESETS

        self.assertEqual(PRESETS, list(LIB_PRESETS))  # the combo box choices match the Lib's presets
        parameterNode = SyntheticDataGenLogic().getParameterNode()
        self.assertEqual(parameterNode.preset, "ap")
        self.assertEqual(parameterNode.laoDegrees, 0.0)
        self.assertEqual(parameterNode.cranialDegrees, 0.0)
        parameterNode.preset = "lateral-left"
        parameterNode.laoDegrees = 30.0
        self.assertEqual(SyntheticDataGenLogic().getParameterNode().preset, "lateral-left")
        with self.assertRaises(ValueError):
            parameterNode.cranialDegrees = 60.0  # outside WithinRange(-45, 45)
        self.delayDisplay("Test passed")

    def test_LoadSampleCase(self):
        self.delayDisplay("Loading a sample case")
        from SyntheticDataGenLib.sample_data import sample_case

        logic, name, volumeNode, segmentationNode = self._loadFirstSampleCase()
        # The temporary label map is gone: the CT is the only scalar volume (label maps are scalar volumes too)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLLabelMapVolumeNode"), 0)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"), 1)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode"), 1)
        self.assertIsNotNone(volumeNode.GetImageData())

        # Segment names are exactly the structures whose ids occur in the label map
        import numpy as np
        import SimpleITK as sitk

        case = sample_case(name)
        table = logic.readLabelTable(case.table_path)
        ids = np.unique(sitk.GetArrayViewFromImage(sitk.ReadImage(str(case.labels_path))))
        expected = {table.get(int(i), f"label_{int(i)}") for i in ids if i != 0}
        segmentation = segmentationNode.GetSegmentation()
        names = {segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())}
        self.assertTrue(names)
        self.assertEqual(names, expected)
        self.delayDisplay("Test passed")

    def test_DescribeSampleCase(self):
        self.delayDisplay("Describing a sample case")
        logic, name, volumeNode, segmentationNode = self._loadFirstSampleCase()
        info = logic.describe(volumeNode, segmentationNode)

        self.assertEqual([int(n) for n in info["ct"]["size"]], list(volumeNode.GetImageData().GetDimensions()))
        for got, expected in zip(info["ct"]["spacing_mm"], volumeNode.GetSpacing()):
            self.assertAlmostEqual(float(got), expected, places=4)

        segmentation = segmentationNode.GetSegmentation()
        names = {segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())}
        self.assertTrue(info["structures"])
        self.assertEqual(set(info["structures"]), names)

        b = logic.volumeBoundsRas(volumeNode)
        tolerance = 1e-3
        for structureName, structure in info["structures"].items():
            self.assertGreater(structure["voxels"], 0, structureName)
            self.assertGreater(structure["volume_ml"], 0.0, structureName)
            low, high = structure["bounds_ras_mm"]
            for axis in range(3):
                # The structure lies inside the CT (this also checks the LPS/RAS handling)
                self.assertGreaterEqual(low[axis], b[2 * axis] - tolerance, structureName)
                self.assertLessEqual(high[axis], b[2 * axis + 1] + tolerance, structureName)
                self.assertLessEqual(low[axis], high[axis], structureName)
        self.delayDisplay("Test passed")

    def test_PresetGeometrySourceOutsideCT(self):
        self.delayDisplay("Preset geometries")
        logic, name, volumeNode, segmentationNode = self._loadFirstSampleCase()
        b = logic.volumeBoundsRas(volumeNode)

        def inside(point):
            return all(b[2 * axis] <= point[axis] <= b[2 * axis + 1] for axis in range(3))

        for preset in PRESETS:
            for lao, cranial in ((0.0, 0.0), (30.0, 15.0), (-45.0, -20.0)):
                geometry = logic.geometry(volumeNode, preset, lao, cranial)
                summary = logic.geometrySummary(geometry)
                self.assertFalse(inside(summary["source_ras_mm"]), f"{preset} LAO {lao} cranial {cranial}: source inside the CT")
                self.assertGreater(summary["sid_mm"], 0.0)

        # AP: the beam enters the patient's front, so the source is anterior (+A in RAS); PA the reverse
        self.assertGreater(logic.geometrySummary(logic.geometry(volumeNode, "ap"))["source_ras_mm"][1], b[3])
        self.assertLess(logic.geometrySummary(logic.geometry(volumeNode, "pa"))["source_ras_mm"][1], b[2])
        self.delayDisplay("Test passed")
