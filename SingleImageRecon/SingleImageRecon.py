"""SingleImageRecon: 3D bone surfaces from one or a few radiographs (3D Slicer module).

This file stays thin: it turns GUI state into calls of ``SingleImageReconLib`` /
``SyntheticDataGenLib`` (Slicer-free, also used by the ``xrecon`` command) and MRML nodes into
arrays. World coordinates are Slicer's RAS, in millimetres.
"""

import logging
from typing import Optional

import vtk

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin
from slicer.parameterNodeWrapper import parameterNodeWrapper

from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode


#
# SingleImageRecon
#


class SingleImageRecon(ScriptedLoadableModule):
    """Module description shown in Slicer's module list and help panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Single Image Reconstruction")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Reconstruction")]
        # Case loading (CT + label map -> volume + named segmentation) is shared with SyntheticDataGen.
        self.parent.dependencies = ["SyntheticDataGen"]
        self.parent.contributors = ["xrecon developers"]
        self.parent.helpText = _("""
Reconstruct closed 3D bone surfaces from one radiograph, or several calibrated views of the same
patient: bundled MONAI networks predict per-bone dual-face depth maps, masks and landmarks, which
are lifted to surfaces and fitted with a statistical shape model. Results are compared with the CT
reference segmentation when one is available.
<p>Currently available: load a bundled sample case (a CT with reference bone labels) as a volume
and a segmentation whose segments are named after the structures.</p>
See the <a href="https://github.com/xrecon/SlicerXRecon#SingleImageRecon">module documentation</a>.
""")
        self.parent.acknowledgementText = _("""
Developed by the xrecon developers. Built on 3D Slicer, SimpleITK, PyTorch and MONAI.
""")


#
# SingleImageReconParameterNode
#


@parameterNodeWrapper
class SingleImageReconParameterNode:
    """
    The parameters of the module, saved with the scene.

    sampleCase - name of the selected bundled sample case.
    referenceVolume - CT of the patient, when available (ground truth for evaluation).
    referenceSegmentation - bone segmentation of that CT (ground-truth surfaces).
    """

    sampleCase: str = ""
    referenceVolume: vtkMRMLScalarVolumeNode
    referenceSegmentation: vtkMRMLSegmentationNode


#
# SingleImageReconWidget
#


class SingleImageReconWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
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

        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SingleImageRecon.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)

        # The .ui connects the top-level qMRMLWidget's mrmlSceneChanged(vtkMRMLScene*) signal
        # to the setMRMLScene(vtkMRMLScene*) slot of each node combo box.
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = SingleImageReconLogic()

        # Update the parameter node when the scene is closed
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        # The sample case list comes from the Lib at run time, so this combo box is synchronised with
        # the parameter node here rather than through a "SlicerParameterName" binding (which needs
        # the choices when the class is defined).
        self._populateSampleCases()
        self.ui.sampleCaseComboBox.connect("currentIndexChanged(int)", self.onSampleCaseChanged)
        self.ui.loadButton.connect("clicked(bool)", self.onLoadButton)

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
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGUIFromParameterNode)

    def onSceneStartClose(self, caller, event) -> None:
        """Called just before the scene is closed."""
        self.setParameterNode(None)
        self.ui.sampleStatusLabel.text = ""

    def onSceneEndClose(self, caller, event) -> None:
        """Called just after the scene is closed."""
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        """Ensure parameter node exists and observed."""
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.sampleCase and self.ui.sampleCaseComboBox.count > 0:
            self._parameterNode.sampleCase = self.ui.sampleCaseComboBox.currentText

    def setParameterNode(self, inputParameterNode: Optional[SingleImageReconParameterNode]) -> None:
        """Set and observe the parameter node; the GUI follows it."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGUIFromParameterNode)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # Widgets carrying the Qt dynamic property "SlicerParameterName" are bound here.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGUIFromParameterNode)
        self._updateGUIFromParameterNode()

    def _populateSampleCases(self) -> None:
        combo = self.ui.sampleCaseComboBox
        combo.clear()
        try:
            names = self.logic.sampleCaseNames()
        except Exception as e:  # the GUI stays usable; the reason is shown to the user
            logging.error(f"Cannot list the sample cases: {e}")
            names = []
            self.ui.sampleStatusLabel.text = _("Cannot list the sample cases: {error}").format(error=e)
        for name in names:
            combo.addItem(name)

    def _updateGUIFromParameterNode(self, caller=None, event=None) -> None:
        combo = self.ui.sampleCaseComboBox
        if self._parameterNode and self._parameterNode.sampleCase:
            index = combo.findText(self._parameterNode.sampleCase)
            if index >= 0 and index != combo.currentIndex:
                wasBlocked = combo.blockSignals(True)
                combo.currentIndex = index
                combo.blockSignals(wasBlocked)
        canLoad = bool(self._parameterNode) and combo.count > 0
        self.ui.loadButton.enabled = canLoad
        self.ui.loadButton.toolTip = (
            _("Load the CT and its reference labels as a volume and a named segmentation.")
            if canLoad else _("No bundled sample case is available."))

    def onSampleCaseChanged(self, index: int) -> None:
        if self._parameterNode and index >= 0:
            self._parameterNode.sampleCase = self.ui.sampleCaseComboBox.itemText(index)

    def onLoadButton(self) -> None:
        """Load the selected sample case and use it as the reference CT and segmentation."""
        name = self.ui.sampleCaseComboBox.currentText
        with slicer.util.tryWithErrorDisplay(_("Failed to load the sample case."), waitCursor=True):
            volumeNode, segmentationNode = self.logic.loadSampleCase(name)
            self._parameterNode.sampleCase = name
            self._parameterNode.referenceVolume = volumeNode
            self._parameterNode.referenceSegmentation = segmentationNode
            self.ui.sampleStatusLabel.text = _("Loaded '{name}': CT {volume}, {count} structures.").format(
                name=name, volume=volumeNode.GetName(),
                count=segmentationNode.GetSegmentation().GetNumberOfSegments())
            slicer.util.setSliceViewerLayers(background=volumeNode, fit=True)


#
# SingleImageReconLogic
#


class SingleImageReconLogic(ScriptedLoadableModuleLogic):
    """Turns MRML nodes into arrays and calls the Lib packages; usable without the GUI."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return SingleImageReconParameterNode(super().getParameterNode())

    @staticmethod
    def sampleCaseNames() -> list:
        """Names of the bundled sample cases (``SyntheticDataGenLib.sample_data.list_sample_cases``)."""
        from SyntheticDataGenLib.sample_data import list_sample_cases

        return list(list_sample_cases())

    def loadSampleCase(self, name: str):
        """Load a bundled sample case: the CT as a scalar volume and its label map as a segmentation
        whose segments are named after the structures of the case's label table. The temporary label
        map node is removed. Returns (volumeNode, segmentationNode)."""
        from SyntheticDataGen import SyntheticDataGenLogic

        return SyntheticDataGenLogic().loadSampleCase(name)


#
# SingleImageReconTest
#


class SingleImageReconTest(ScriptedLoadableModuleTest):
    """Self-test of the module; runs inside Slicer (Reload and Test, or ctest)."""

    def setUp(self):
        """Reset the state: a scene clear is enough."""
        slicer.mrmlScene.Clear()

    def runTest(self):
        """Run all tests of this module."""
        self.setUp()
        self.test_SampleCaseList()
        self.setUp()
        self.test_LoadSampleCase()
        self.setUp()
        self.test_LoadSampleCaseTwice()

    def test_SampleCaseList(self):
        self.delayDisplay("Listing sample cases")
        names = SingleImageReconLogic.sampleCaseNames()
        self.assertTrue(names, "no bundled sample case")
        self.assertTrue(all(isinstance(n, str) and n for n in names))
        self.assertEqual(len(set(names)), len(names))
        self.delayDisplay("Test passed")

    def test_LoadSampleCase(self):
        self.delayDisplay("Loading a sample case")
        from SyntheticDataGen import SyntheticDataGenLogic
        from SyntheticDataGenLib.sample_data import sample_case

        logic = SingleImageReconLogic()
        name = logic.sampleCaseNames()[0]
        volumeNode, segmentationNode = logic.loadSampleCase(name)

        self.assertTrue(volumeNode.IsA("vtkMRMLScalarVolumeNode"))
        self.assertFalse(volumeNode.IsA("vtkMRMLLabelMapVolumeNode"))
        self.assertTrue(segmentationNode.IsA("vtkMRMLSegmentationNode"))
        # The temporary label map was removed: the CT is the only scalar volume
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLLabelMapVolumeNode"), 0)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"), 1)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode"), 1)

        # Every segment is named after a structure of the label table
        structures = set(SyntheticDataGenLogic.readLabelTable(sample_case(name).table_path).values())
        segmentation = segmentationNode.GetSegmentation()
        self.assertGreater(segmentation.GetNumberOfSegments(), 0)
        names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
        self.assertEqual(len(set(names)), len(names))
        for segmentName in names:
            self.assertIn(segmentName, structures)

        # The first segment has voxels on the CT grid
        segmentId = segmentation.GetNthSegmentID(0)
        array = slicer.util.arrayFromSegmentBinaryLabelmap(segmentationNode, segmentId, volumeNode)
        self.assertEqual(array.shape, slicer.util.arrayFromVolume(volumeNode).shape)
        self.assertGreater(int((array > 0).sum()), 0)
        self.delayDisplay("Test passed")

    def test_LoadSampleCaseTwice(self):
        self.delayDisplay("Loading a sample case twice")
        logic = SingleImageReconLogic()
        name = logic.sampleCaseNames()[0]
        first = logic.loadSampleCase(name)
        second = logic.loadSampleCase(name)
        self.assertNotEqual(first[0].GetID(), second[0].GetID())
        self.assertNotEqual(first[1].GetID(), second[1].GetID())
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLLabelMapVolumeNode"), 0)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"), 2)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode"), 2)
        self.delayDisplay("Test passed")
