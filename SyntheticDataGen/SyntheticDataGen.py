"""SyntheticDataGen: synthetic radiographs and exact training targets from CT (3D Slicer module).

This file stays thin: it turns GUI state into calls of ``SyntheticDataGenLib`` (Slicer-free,
also used by the ``xrecon`` command) and MRML nodes into arrays/images. All computation lives
in the Lib; batch generation runs the ``xrecon generate`` command in a subprocess, so the GUI
never waits for it. World coordinates are Slicer's RAS, in millimetres.
"""

import logging
import os
import shlex
import shutil
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

# The MRML work is in the Lib; the Widget finds the preview's nodes by their role.
from SyntheticDataGenLib import scene
from SyntheticDataGenLib.scene import ROLE_ATTRIBUTE

#: View presets of ``SyntheticDataGenLib.projection.geometry.preset_geometry`` (the .ui combo box lists the same).
PRESETS = ["ap", "pa", "lateral-left", "lateral-right"]
#: Augmentation presets of ``xrecon generate --preset``.
AUGMENTATION_PRESETS = ["none", "light", "heavy"]

#: The preview waits this long after the last change before it renders (milliseconds).
PREVIEW_DEBOUNCE_MS = 300
#: How often the GUI reads the generator's output (milliseconds).
GENERATION_POLL_MS = 100

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
separate process: the GUI stays usable, and a cancelled run continues where it stopped.</li>
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


def structureList(text: str) -> list:
    """Structure names from the parameter node's comma-separated ``structures``."""
    return [name.strip() for name in (text or "").split(",") if name.strip()]


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
        self._updatingGui = False
        self._listedSegmentationNode = None  # segmentation whose segments the structure list shows
        self._observedSegmentation = None  # its vtkSegmentation, observed for added/removed/renamed segments
        self._lastPreviewKey = None  # parameters of the preview on screen (or of the one that failed)
        self._previewShown = False  # the first preview also fits the views
        self._job = None  # running GenerationJob
        self._previewTimer = None
        self._generationTimer = None

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
        self.ui.selectAllStructuresButton.connect("clicked(bool)", lambda: self._checkAllStructures(True))
        self.ui.selectNoStructuresButton.connect("clicked(bool)", lambda: self._checkAllStructures(False))

        # Widgets synchronised by hand (parameterNodeWrapper binds neither a checkable list nor a
        # ctkPathLineEdit to a str)
        self.ui.structuresListWidget.connect("itemChanged(QListWidgetItem*)", self._onStructureItemChanged)
        self.ui.outputDirectoryPathLineEdit.connect("currentPathChanged(QString)", self._onOutputDirectoryChanged)

        table = self.ui.structuresTableWidget
        table.setColumnCount(3)
        table.setHorizontalHeaderLabels([_("Structure"), _("Voxels"), _("Volume (ml)")])

        # Live preview: a single-shot timer restarted by every change renders once the user pauses
        self._previewTimer = qt.QTimer()
        self._previewTimer.setSingleShot(True)
        self._previewTimer.setInterval(PREVIEW_DEBOUNCE_MS)
        self._previewTimer.connect("timeout()", self._onPreviewTimeout)

        # Batch generation: the generator's output is read by a thread; this timer drains it
        self._generationTimer = qt.QTimer()
        self._generationTimer.setInterval(GENERATION_POLL_MS)
        self._generationTimer.connect("timeout()", self._pollGeneration)
        self.ui.generationProgressBar.setRange(0, 1)
        self.ui.generationProgressBar.setValue(0)

        # Make sure parameter node is initialized (needed for module reload)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        """Called when the application closes and the module widget is destroyed."""
        if self._previewTimer:
            self._previewTimer.stop()
        if self._generationTimer:
            self._generationTimer.stop()
        if self._job is not None and self._job.running:
            self._job.cancel(force=True)
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
        self._previewTimer.stop()

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
        if self._parameterNode:
            # Widgets carrying the Qt dynamic property "SlicerParameterName" are bound here.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self._onParameterNodeModified()

    def _onParameterNodeModified(self, caller=None, event=None) -> None:
        self._syncSegmentationObservation()
        self._refreshStructureList()
        self._syncOutputDirectoryWidget()
        self._updateButtonStates()
        self._schedulePreview()

    # ------------------------------------------------------------------ structures (checkable list)

    def _syncSegmentationObservation(self) -> None:
        """Follow the selected segmentation's segments; a newly chosen segmentation selects all of them."""
        segmentationNode = self._parameterNode.inputSegmentation if self._parameterNode else None
        if segmentationNode is self._listedSegmentationNode:
            return
        previous = self._listedSegmentationNode
        if self._observedSegmentation is not None:
            for event in self._segmentEvents():
                self.removeObserver(self._observedSegmentation, event, self._onSegmentsChanged)
            self._observedSegmentation = None
        self._listedSegmentationNode = segmentationNode
        if segmentationNode is None:
            return
        # The segments live in the node's vtkSegmentation, which reports their changes
        self._observedSegmentation = segmentationNode.GetSegmentation()
        for event in self._segmentEvents():
            self.addObserver(self._observedSegmentation, event, self._onSegmentsChanged)
        if previous is not None or not self._parameterNode.structures:
            # The user picked another segmentation (or none was chosen yet): start with all its segments
            self._parameterNode.structures = ",".join(self.logic.segmentNames(segmentationNode))

    @staticmethod
    def _segmentEvents():
        return (slicer.vtkSegmentation.SegmentAdded, slicer.vtkSegmentation.SegmentRemoved,
                slicer.vtkSegmentation.SegmentModified)

    def _onSegmentsChanged(self, caller=None, event=None) -> None:
        # Segments were added, removed or renamed: update the list once the change is complete
        qt.QTimer.singleShot(0, self._onSegmentsChangedLater)

    def _onSegmentsChangedLater(self) -> None:
        p = self._parameterNode
        if not p or not p.inputSegmentation:
            return
        listWidget = self.ui.structuresListWidget
        listed = {listWidget.item(row).text() for row in range(listWidget.count)}
        added = [name for name in self.logic.segmentNames(p.inputSegmentation) if name not in listed]
        if added:  # new (or renamed) segments start checked
            p.structures = ",".join(structureList(p.structures) + added)
        self._refreshStructureList()
        self._updateButtonStates()

    def _refreshStructureList(self) -> None:
        """Show the selected segmentation's segments, checked as the parameter node says."""
        listWidget = self.ui.structuresListWidget
        segmentationNode = self._parameterNode.inputSegmentation if self._parameterNode else None
        segments = scene.segment_names_and_colors(segmentationNode)
        selected = set(structureList(self._parameterNode.structures)) if self._parameterNode else set()
        wanted = [(name, name in selected) for name, _color in segments]
        shown = [(listWidget.item(row).text(), listWidget.item(row).checkState() == qt.Qt.Checked)
                 for row in range(listWidget.count)]
        if wanted == shown:
            return
        self._updatingGui = True
        try:
            listWidget.clear()
            for name, color in segments:
                item = qt.QListWidgetItem(name)
                item.setFlags(item.flags() | qt.Qt.ItemIsUserCheckable)
                item.setCheckState(qt.Qt.Checked if name in selected else qt.Qt.Unchecked)
                pixmap = qt.QPixmap(12, 12)
                pixmap.fill(qt.QColor.fromRgbF(*color))
                item.setIcon(qt.QIcon(pixmap))
                listWidget.addItem(item)
        finally:
            self._updatingGui = False

    def _onStructureItemChanged(self, item=None) -> None:
        if self._updatingGui or not self._parameterNode:
            return
        listWidget = self.ui.structuresListWidget
        checked = [listWidget.item(row).text() for row in range(listWidget.count)
                   if listWidget.item(row).checkState() == qt.Qt.Checked]
        self._parameterNode.structures = ",".join(checked)

    def _checkAllStructures(self, checked: bool) -> None:
        if not self._parameterNode:
            return
        segmentationNode = self._parameterNode.inputSegmentation
        names = self.logic.segmentNames(segmentationNode) if (checked and segmentationNode) else []
        self._parameterNode.structures = ",".join(names)

    def _selectedStructures(self) -> list:
        """The checked structures that the segmentation has (a renamed segment drops out), in its order."""
        if not self._parameterNode or not self._parameterNode.inputSegmentation:
            return []
        selected = set(structureList(self._parameterNode.structures))
        return [name for name in self.logic.segmentNames(self._parameterNode.inputSegmentation) if name in selected]

    # ------------------------------------------------------------------ output folder

    def _syncOutputDirectoryWidget(self) -> None:
        if not self._parameterNode:
            return
        path = self._parameterNode.outputDirectory
        if self.ui.outputDirectoryPathLineEdit.currentPath != path:
            self._updatingGui = True
            try:
                self.ui.outputDirectoryPathLineEdit.currentPath = path
            finally:
                self._updatingGui = False

    def _onOutputDirectoryChanged(self, path) -> None:
        if self._updatingGui or not self._parameterNode:
            return
        if self._parameterNode.outputDirectory != path:
            self._parameterNode.outputDirectory = path

    # ------------------------------------------------------------------ state of the buttons

    def _updateButtonStates(self, caller=None, event=None) -> None:
        p = self._parameterNode
        hasVolume = bool(p and p.inputVolume)
        hasSegmentation = bool(p and p.inputSegmentation)
        hasStructures = bool(self._selectedStructures())
        running = self._job is not None and self._job.running

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

        missing = []
        if not hasVolume:
            missing.append(_("a CT volume"))
        if not hasSegmentation:
            missing.append(_("a segmentation"))
        elif not hasStructures:
            missing.append(_("at least one structure"))
        if not (p and p.outputDirectory):
            missing.append(_("an output folder"))
        self.ui.generateButton.enabled = not missing and not running
        self.ui.generateButton.toolTip = (
            _("A generation is running.") if running
            else _("Select {what}.").format(what=", ".join(missing)) if missing
            else _("Generate the training set into the output folder in a separate process; "
                   "a folder that holds part of a set is continued."))
        self.ui.cancelButton.enabled = running

    def _clearResults(self) -> None:
        self.ui.structuresTableWidget.setRowCount(0)
        self.ui.caseStatusLabel.text = ""
        self.ui.geometryLabel.text = ""
        self.ui.previewStatusLabel.text = ""
        self._lastPreviewKey = None
        self._previewShown = False
        self.ui.structuresListWidget.clear()
        self.logic.clearCache()

    # ------------------------------------------------------------------ describe case

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

    # ------------------------------------------------------------------ geometry

    def _geometryFromParameters(self):
        """The base view of the generator: the preset about the centre of the selected structures."""
        p = self._parameterNode
        return self.logic.geometry(p.inputVolume, p.inputSegmentation, self._selectedStructures(), p)

    def _showGeometrySummary(self, geometry) -> None:
        source = ", ".join(f"{x:.1f}" for x in geometry.source_ras_mm)
        self.ui.geometryLabel.text = _(
            "Source (RAS): ({source}) mm\n"
            "Source-to-detector distance (SID): {sid:.1f} mm\n"
            "Detector: {width}\u00d7{height} px at {su:.3f}\u00d7{sv:.3f} mm").format(
                source=source, sid=float(geometry.source_to_detector_mm), width=geometry.width,
                height=geometry.height, su=geometry.pixel_spacing_mm[0], sv=geometry.pixel_spacing_mm[1])

    def onApplyButton(self) -> None:
        """Compute the projection geometry, show its key numbers and draw it in the 3D view."""
        with slicer.util.tryWithErrorDisplay(_("Failed to compute the projection geometry."), waitCursor=True):
            geometry = self._geometryFromParameters()
            self._showGeometrySummary(geometry)
            self.logic.updateGeometryModel(geometry)

    # ------------------------------------------------------------------ preview

    def _previewKey(self):
        p = self._parameterNode
        return (p.inputVolume.GetID() if p.inputVolume else None,
                p.inputSegmentation.GetID() if p.inputSegmentation else None,
                tuple(self._selectedStructures()), p.preset, p.laoDegrees, p.cranialDegrees,
                p.sourceToIsocenterMm, p.sourceToDetectorMm, p.detectorSizePx, p.pixelSpacingMm)

    def _schedulePreview(self) -> None:
        p = self._parameterNode
        if not (p and p.livePreview and p.inputVolume) or not self.parent.isEntered:
            self._previewTimer.stop()
            return
        if self._previewKey() != self._lastPreviewKey:
            self._previewTimer.start()  # restarts: renders PREVIEW_DEBOUNCE_MS after the last change

    def _onPreviewTimeout(self) -> None:
        p = self._parameterNode
        if p and p.livePreview and p.inputVolume:
            self._runPreview(interactive=False)

    def onPreviewButton(self) -> None:
        """Render the preview now (also when live preview is off)."""
        with slicer.util.tryWithErrorDisplay(_("Failed to render the preview."), waitCursor=True):
            self._runPreview(interactive=True)

    def _runPreview(self, interactive: bool) -> None:
        """Render the DRR preview; errors of a live preview go to the status line, not a dialog."""
        p = self._parameterNode
        self._lastPreviewKey = self._previewKey()  # a failing state is not retried until it changes
        if not interactive:
            qt.QApplication.setOverrideCursor(qt.Qt.WaitCursor)
        try:
            geometry = self._geometryFromParameters()
            self._showGeometrySummary(geometry)
            result = self.logic.preview(p.inputVolume, p.inputSegmentation, self._selectedStructures(), geometry,
                                        fit=not self._previewShown)
            self._previewShown = True
            visible = sum(1 for mask in result["view"].masks if bool(mask.any()))
            self.ui.previewStatusLabel.text = _(
                "DRR {width}\u00d7{height} px rendered in {seconds:.2f} s; {visible} of {count} structures on the detector.").format(
                    width=geometry.width, height=geometry.height, seconds=result["seconds"],
                    visible=visible, count=len(result["view"].names))
        except Exception as error:
            self.ui.previewStatusLabel.text = _("Preview failed: {error}").format(error=error)
            if isinstance(error, TorchUnavailableError) and p.livePreview:
                p.livePreview = False  # do not ask again on every change
            if interactive:
                raise
            logging.warning(f"SyntheticDataGen preview failed: {error}")
        finally:
            if not interactive:
                qt.QApplication.restoreOverrideCursor()

    # ------------------------------------------------------------------ batch generation

    def onGenerateButton(self) -> None:
        """Start ``xrecon generate`` in a subprocess; a timer follows its progress."""
        if self._job is not None and self._job.running:
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to start the generation."), waitCursor=True):
            p = self._parameterNode
            self._job = None
            self.ui.generationLogTextEdit.clear()
            self.ui.generationStatusLabel.text = _("Exporting the CT and the segmentation...")
            slicer.app.processEvents()
            try:
                self._job = self.logic.startGeneration(p.inputVolume, p.inputSegmentation, self._selectedStructures(),
                                                       p.outputDirectory, p)
            except Exception:
                self.ui.generationStatusLabel.text = _("Could not start the generation.")
                raise
            self.ui.outputDirectoryPathLineEdit.addCurrentPathToHistory()
            self.ui.generationLogTextEdit.appendPlainText(shlex.join(self._job.args))
            self.ui.generationProgressBar.setRange(0, max(1, p.views))
            self.ui.generationProgressBar.setValue(0)
            self.ui.generationStatusLabel.text = _("Generating into {folder}...").format(folder=p.outputDirectory)
            self._generationTimer.start()
        self._updateButtonStates()

    def _pollGeneration(self) -> None:
        job = self._job
        if job is None:
            self._generationTimer.stop()
            return
        for event in job.poll():
            if event[0] == "progress":
                done, total = event[1], event[2]
                self.ui.generationProgressBar.setRange(0, max(1, total))
                self.ui.generationProgressBar.setValue(done)
                if not job.cancelled:
                    self.ui.generationStatusLabel.text = _("Generated {done} of {total}.").format(done=done, total=total)
            elif event[0] == "log":
                self.ui.generationLogTextEdit.appendPlainText(event[1])
        if not job.running:
            self._generationTimer.stop()
            self._finishGeneration(job)

    def _finishGeneration(self, job) -> None:
        progress = _("{done} of {total}").format(done=job.done, total=job.total if job.total is not None else "?")
        if job.cancelled:
            self.ui.generationStatusLabel.text = _(
                "Cancelled after {progress}. Press Generate to continue where it stopped.").format(progress=progress)
        elif job.return_code == 0:
            self.ui.generationStatusLabel.text = _("Finished: {progress} in {folder}.").format(
                progress=progress, folder=job.output_dir)
        else:
            lastLine = job.log[-1] if job.log else ""
            self.ui.generationStatusLabel.text = _(
                "Failed (exit status {code}) after {progress}: {message}").format(
                    code=job.return_code, progress=progress, message=lastLine or _("see the log below"))
        self._updateButtonStates()

    def onCancelButton(self) -> None:
        """Stop the generator (terminate, then kill if it does not stop); the folder keeps what was done."""
        if self._job is not None and self._job.running:
            self._job.cancel()
            self.ui.generationStatusLabel.text = _("Cancelling...")
            self.ui.cancelButton.enabled = False


#
# SyntheticDataGenLogic
#


class TorchUnavailableError(RuntimeError):
    """PyTorch is not installed in Slicer and was not installed now."""


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
    def segmentNames(segmentationNode) -> list:
        """Segment names in the segmentation's order."""
        return [name for name, _color in scene.segment_names_and_colors(segmentationNode)]

    def describe(self, volumeNode, segmentationNode) -> dict:
        """``cases.case_info.describe_case`` of the CT and every segment rasterised on its grid: "ct"
        (size, spacing_mm, origin_ras_mm, direction_ras, hu_range) and "structures" ({name: voxels,
        volume_ml, bounds_ras_mm})."""
        if not volumeNode or not segmentationNode:
            raise ValueError("A CT volume and a segmentation are required")
        from SyntheticDataGenLib.cases.case_info import describe_case
        from SyntheticDataGenLib.cases.labels import Segmentation

        ctImage = scene.volume_image(volumeNode)
        masks = scene.segment_mask_images(segmentationNode, volumeNode, None, ctImage)
        return describe_case(ctImage, Segmentation.from_masks(masks) if masks else None)

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

    @staticmethod
    def ensureTorch():
        """Import PyTorch, installing it through the PyTorch extension (asking the user) if missing.

        Raises TorchUnavailableError when the PyTorch extension is missing or the user declines.
        """
        try:
            import torch

            return torch
        except ImportError:
            pass
        try:
            import PyTorchUtils
        except ImportError:
            raise TorchUnavailableError(
                "The DRR preview needs PyTorch. Install the 'PyTorch' extension from the Extensions Manager, "
                "restart Slicer and try again.") from None
        torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True, torchVersionRequirement=">=2.2")
        if torch is None:
            raise TorchUnavailableError("The DRR preview needs PyTorch, which was not installed.")
        return torch

    def clearCache(self) -> None:
        self.case.clear()
        self._shownDetectorExtent = None

    def preview(self, volumeNode, segmentationNode, structures, geometry, show: bool = True, fit: bool = True) -> dict:
        """Render the preview (``prepared_case.render_preview``: "DRR preview", its masks, the
        geometry model) and, with ``show``, turn the Red slice view to the detector plane; ``fit``
        also fits the slice and 3D views. Returns {"drr", "masks", "model", "view", "seconds"}."""
        from SyntheticDataGenLib.prepared_case import render_preview

        self.ensureTorch()
        result = render_preview(slicer.mrmlScene, self.case, volumeNode, segmentationNode, structures, geometry)
        if show:
            extent = (tuple(geometry.size_px), tuple(float(s) for s in geometry.pixel_spacing_mm))
            self.showPreview(result["drr"], result["masks"], geometry, segmentationNode, fit=fit,
                             fitSlice=fit or extent != self._shownDetectorExtent)
            self._shownDetectorExtent = extent
        return result

    @staticmethod
    def showPreview(imageNode, labelNode, geometry, segmentationNode=None, fit: bool = True,
                    fitSlice: Optional[bool] = None) -> None:
        """Show an image on its detector plane in the Red slice view (``scene.show_on_slice_view``);
        ``fit`` also shows the segmentation's surfaces and fits the 3D view."""
        sliceLogic = slicer.app.applicationLogic().GetSliceLogicByLayoutName("Red") if slicer.app else None
        if sliceLogic is None:
            return
        scene.show_on_slice_view(sliceLogic, imageNode, labelNode, geometry, fit if fitSlice is None else fitSlice)
        if fit:
            if segmentationNode:
                segmentationNode.CreateClosedSurfaceRepresentation()
            slicer.util.resetThreeDViews()

    @staticmethod
    def modulePythonPaths() -> list:
        """Folders that hold ``SyntheticDataGenLib`` and ``SingleImageReconLib`` (for the generator's PYTHONPATH)."""
        from SyntheticDataGenLib.dataset.generation_command import module_python_paths

        here = os.path.dirname(os.path.abspath(__file__))
        candidates = [here]
        module = getattr(getattr(slicer, "modules", None), "singleimagerecon", None)
        if module is not None and getattr(module, "path", None):
            candidates.append(os.path.dirname(os.path.abspath(module.path)))
        candidates.append(os.path.join(os.path.dirname(here), "SingleImageRecon"))  # source tree layout
        return module_python_paths(candidates)

    def startGeneration(self, volumeNode, segmentationNode, structures, outputDirectory: str,
                        p: SyntheticDataGenParameterNode):
        """Export the inputs into ``OUTPUT/inputs/`` and start ``xrecon generate`` with the parameter
        node's options (``prepared_case.start_generation``); returns its ``GenerationJob``."""
        from SyntheticDataGenLib.dataset.generation_command import GenerationOptions
        from SyntheticDataGenLib.prepared_case import start_generation

        options = GenerationOptions(p.views, p.seed, p.augmentationPreset, p.preset, p.laoDegrees, p.cranialDegrees,
                                    p.sourceToIsocenterMm, p.sourceToDetectorMm, p.detectorSizePx, p.pixelSpacingMm)
        return start_generation(self.case, volumeNode, segmentationNode, structures, outputDirectory, options,
                                self.modulePythonPaths())


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
        paths = SyntheticDataGenLogic.modulePythonPaths()
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
        structures = logic.segmentNames(segmentationNode)[:3]
        parameterNode = logic.getParameterNode()
        parameterNode.detectorSizePx, parameterNode.pixelSpacingMm = 64, 6.0
        result = logic.preview(volumeNode, segmentationNode, structures,
                               logic.geometry(volumeNode, segmentationNode, structures, parameterNode))
        compositeNode = slicer.app.applicationLogic().GetSliceLogicByLayoutName("Red").GetSliceCompositeNode()
        self.assertEqual(compositeNode.GetBackgroundVolumeID(), result["drr"].GetID())
        self.assertEqual(compositeNode.GetLabelVolumeID(), result["masks"].GetID())
