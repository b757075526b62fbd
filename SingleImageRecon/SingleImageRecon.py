"""SingleImageRecon: 3D bone surfaces from one or a few radiographs (3D Slicer module).

This file stays thin: it turns GUI state into calls of ``SingleImageReconLib`` /
``SyntheticDataGenLib`` (Slicer-free, also used by the ``xrecon`` command) and MRML nodes into
arrays. World coordinates are Slicer's RAS, in millimetres.
"""

import importlib.util
import logging
import os
from typing import Annotated, Optional

import qt
import vtk

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper, WithinRange

from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode

from SingleImageReconLib import run_scene, scene
from SingleImageReconLib.reconstruction_run import STAGE_NAMES, run_summary as runSummary

#: Python packages the reconstruction needs besides Slicer's own and PyTorch: import name -> pip requirement.
PIP_REQUIREMENTS = {"monai": "monai>=1.3", "safetensors": "safetensors>=0.4", "skimage": "scikit-image>=0.22",
                    "scipy": "scipy>=1.10", "fast_simplification": "fast-simplification>=0.1.7"}
# Choices of the parameter node; Testing/test_module_bindings.py checks them against the Lib's.
GEOMETRY_SOURCES = ["radiograph", "file", "dicom", "preset"]
PRESETS = ["ap", "pa", "lateral-left", "lateral-right"]
METHODS = ["depth", "ssm", "combined"]
DEVICES = ["auto", "cpu", "cuda"]
ALL = "all"  # the Compare combo boxes' entry for every method / structure
RUN_POLL_MS = 200


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
Reconstruct closed 3D bone surfaces from one radiograph: bundled MONAI networks predict each bone's mask and
dual-face depth maps (<i>depth</i>), or landmarks that a statistical shape model is fitted to (<i>ssm</i>), or
both (<i>combined</i>). With a reference CT and segmentation the surfaces are measured against it.
<ul>
<li><b>Sample case</b> / <b>Reference</b>: a CT with bone labels; ground truth for evaluation.</li>
<li><b>Radiograph</b>: a one-slice scalar volume, bone bright, and its projection geometry: the one it carries
(made by SyntheticDataGen or <i>Synthesise a test radiograph</i>), a JSON file, the DICOM tags of the file it
was loaded from, or a preset view with a pixel spacing.</li>
<li><b>Options</b>: method, model bundle (empty: the bundled one), CPU or GPU, surface grid spacing.</li>
<li><b>Apply</b> runs <code>xrecon reconstruct</code> (and <code>xrecon evaluate</code>) in the background, with
progress and Cancel. Each run gets a folder in the Data module: the radiograph on its detector plane, the X-ray
geometry, one model per structure coloured by signed distance to the reference (red outside, blue inside,
&plusmn;5 mm, with a legend), the reference surfaces, landmarks, a metrics table and the structures not found.</li>
<li><b>Compare</b> shows one method or structure at a time across runs.</li>
<li><b>Demo</b> renders radiographs of the reference CT and reconstructs from one view and from three fused.</li>
</ul>
Needs PyTorch (the PyTorch extension) and MONAI, safetensors, scikit-image and SciPy (offered for installation on
first use). Coordinates are RAS, in mm.
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
    referenceVolume, referenceSegmentation - the patient's CT and bone segmentation (ground truth).
    radiograph - radiograph to reconstruct from: a one-slice scalar volume [1, height, width], bone bright.
    geometrySource - where its geometry comes from: the node's attribute, a JSON file, DICOM tags, a preset.
    geometryPath - projection geometry JSON (DESIGN.md format, RAS mm), for the "file" source.
    geometryPreset, pixelSpacingMm - the view and detector pixel spacing (mm), for the "preset" source.
    method - depth, ssm or combined; bundlePath - a depth bundle folder ("": the bundled one).
    device - auto, cpu or cuda; spacingMm - voxel size of the surface extraction grid, mm.
    runsFolder - where runs write their files ("": Slicer's temporary folder).
    fuseThreeViews - the demo also shows the reconstruction from three fused views.
    """

    sampleCase: str = ""
    referenceVolume: vtkMRMLScalarVolumeNode
    referenceSegmentation: vtkMRMLSegmentationNode
    radiograph: vtkMRMLScalarVolumeNode
    geometrySource: Annotated[str, Choice(GEOMETRY_SOURCES)] = "radiograph"
    geometryPath: str = ""
    geometryPreset: Annotated[str, Choice(PRESETS)] = "ap"
    pixelSpacingMm: Annotated[float, WithinRange(0.01, 5.0)] = 0.2
    method: Annotated[str, Choice(METHODS)] = "depth"
    bundlePath: str = ""
    device: Annotated[str, Choice(DEVICES)] = "auto"
    spacingMm: Annotated[float, WithinRange(0.5, 5.0)] = 1.5
    runsFolder: str = ""
    fuseThreeViews: bool = True


#
# SingleImageReconWidget
#


class SingleImageReconWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """GUI of the module: binds the .ui to the parameter node, follows runs, calls the logic."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)  # needed for parameter node observation
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._run = None  # the running ReconstructionRun
        self._runTimer = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SingleImageRecon.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        # The .ui connects mrmlSceneChanged(vtkMRMLScene*) to each node combo box's setMRMLScene.
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = SingleImageReconLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        # The sample cases come from the Lib at run time, so that combo box is synchronised here
        # rather than through "SlicerParameterName" (which needs the choices when the class is defined).
        self._populateSampleCases()
        self.ui.sampleCaseComboBox.connect("currentIndexChanged(int)", self.onSampleCaseChanged)
        self.ui.loadButton.connect("clicked(bool)", self.onLoadButton)
        # parameterNodeWrapper binds a ctkPathLineEdit only to a pathlib.Path (where "" reads as "."),
        # so the optional paths are str fields synchronised by hand
        self._pathEdits = {"geometryPath": self.ui.geometryPathLineEdit, "bundlePath": self.ui.bundlePathLineEdit,
                           "runsFolder": self.ui.runsFolderLineEdit}
        for field, lineEdit in self._pathEdits.items():
            lineEdit.connect("currentPathChanged(QString)", lambda path, field=field: self.onPathChanged(field, path))
        self.ui.synthesiseButton.connect("clicked(bool)", self.onSynthesiseButton)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.demoButton.connect("clicked(bool)", self.onDemoButton)
        self.ui.compareMethodComboBox.connect("currentIndexChanged(int)", self.onCompareChanged)
        self.ui.compareStructureComboBox.connect("currentIndexChanged(int)", self.onCompareChanged)
        self._runTimer = qt.QTimer()
        self._runTimer.setInterval(RUN_POLL_MS)
        self._runTimer.connect("timeout()", self._pollRun)
        self._refreshCompare()
        self.initializeParameterNode()

    def cleanup(self) -> None:
        """Called when the application closes: a running reconstruction is stopped."""
        if self._runTimer:
            self._runTimer.stop()
        if self._run is not None:
            self._run.chain.cancel(force=True)
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        # The GUI is updated again when the user comes back; a run keeps going meanwhile.
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGUIFromParameterNode)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)
        self.ui.sampleStatusLabel.text = ""
        self.ui.reconstructStatusLabel.text = ""

    def onSceneEndClose(self, caller, event) -> None:
        self._refreshCompare()
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.sampleCase and self.ui.sampleCaseComboBox.count > 0:
            self._parameterNode.sampleCase = self.ui.sampleCaseComboBox.currentText

    def setParameterNode(self, inputParameterNode: Optional[SingleImageReconParameterNode]) -> None:
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
        p = self._parameterNode
        combo = self.ui.sampleCaseComboBox
        if p and p.sampleCase:
            index = combo.findText(p.sampleCase)
            if index >= 0 and index != combo.currentIndex:
                wasBlocked = combo.blockSignals(True)
                combo.currentIndex = index
                combo.blockSignals(wasBlocked)
        self.ui.loadButton.enabled = bool(p) and combo.count > 0
        for field, lineEdit in self._pathEdits.items():
            if p and lineEdit.currentPath != getattr(p, field):
                wasBlocked = lineEdit.blockSignals(True)
                lineEdit.currentPath = getattr(p, field)
                lineEdit.blockSignals(wasBlocked)
        source = p.geometrySource if p else ""
        for widget, shown in ((self.ui.geometryPathLabel, source == "file"), (self.ui.geometryPathLineEdit, source == "file"),
                              (self.ui.geometryPresetLabel, source == "preset"),
                              (self.ui.geometryPresetComboBox, source == "preset"),
                              (self.ui.pixelSpacingLabel, source == "preset"), (self.ui.pixelSpacingSpinBox, source == "preset")):
            widget.visible = shown
        running = self._run is not None
        missing = self.logic.missingInputs(p) if p else _("No parameter node.")
        self.ui.applyButton.enabled = not running and not missing
        self.ui.applyButton.toolTip = missing or _(
            "Reconstruct every bone the model knows from the radiograph, in the background; with a reference CT "
            "and segmentation, also measure the surfaces against it.")
        self.ui.cancelButton.enabled = running
        hasReference = bool(p and p.referenceVolume and p.referenceSegmentation)
        self.ui.synthesiseButton.enabled = hasReference and not running
        self.ui.demoButton.enabled = hasReference and not running
        self.ui.demoButton.toolTip = (
            _("Render radiographs of the reference CT, reconstruct the bones from them and measure the surfaces "
              "against the reference segmentation.") if hasReference
            else _("Select a reference CT and its segmentation (or load a sample case)."))

    def onSampleCaseChanged(self, index: int) -> None:
        if self._parameterNode and index >= 0:
            self._parameterNode.sampleCase = self.ui.sampleCaseComboBox.itemText(index)

    def onPathChanged(self, field: str, path: str) -> None:
        if self._parameterNode and getattr(self._parameterNode, field) != path:
            setattr(self._parameterNode, field, path)

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

    def onSynthesiseButton(self) -> None:
        """A test radiograph of the reference CT, as the model's training images were rendered."""
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Could not synthesise a radiograph."), waitCursor=True):
            self.logic.ensurePythonPackages()
            node = self.logic.synthesiseRadiograph(p.referenceVolume, p.referenceSegmentation, p.bundlePath, p.device)
            p.radiograph, p.geometrySource = node, "radiograph"
            self.logic.showRadiograph(node)
            self.ui.reconstructStatusLabel.text = _("Synthesised '{name}' from the reference CT.").format(
                name=node.GetName())

    def onApplyButton(self) -> None:
        """Start a reconstruction in the background; the timer follows it."""
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Could not start the reconstruction."), waitCursor=True):
            self.logic.ensurePythonPackages()  # may ask to install packages, before anything runs
            self._run = self.logic.startRun(
                p.radiograph, p.geometrySource, p.geometryPath, p.geometryPreset, p.pixelSpacingMm,
                p.referenceVolume, p.referenceSegmentation, p.method, p.bundlePath, p.device, p.spacingMm,
                p.runsFolder)
            self.ui.progressBar.visible = True
            self.ui.progressBar.maximum, self.ui.progressBar.value = 0, 0  # busy until the first count
            self.ui.reconstructStatusLabel.text = _("Starting '{name}'...").format(name=self._run.name)
            self._runTimer.start()
        self._updateGUIFromParameterNode()

    def onCancelButton(self) -> None:
        if self._run is not None:
            self._run.chain.cancel()
            self.ui.reconstructStatusLabel.text = _("Cancelling...")

    def _pollRun(self) -> None:
        run = self._run
        for event in run.chain.poll():
            if event[0] == "progress":
                self.ui.progressBar.maximum, self.ui.progressBar.value = event[2], event[1]
                self.ui.reconstructStatusLabel.text = self.logic.stageText(run.chain.stage)
        if run.chain.running:
            return
        self._runTimer.stop()
        self._run = None
        self.ui.progressBar.visible = False
        try:
            if run.chain.cancelled:
                self.ui.reconstructStatusLabel.text = _("'{name}' cancelled.").format(name=run.name)
            elif run.chain.return_code != 0:
                lastLines = list(run.chain.log)[-20:]
                self.ui.reconstructStatusLabel.text = _("'{name}' failed: {reason}").format(
                    name=run.name, reason=lastLines[-1] if lastLines else run.chain.return_code)
                slicer.util.errorDisplay(_("The reconstruction failed."), detailedText="\n".join(lastLines))
            else:
                with slicer.util.tryWithErrorDisplay(_("Could not show the reconstruction."), waitCursor=True):
                    nodes, result = self.logic.addRunToScene(run)
                    self.ui.reconstructStatusLabel.text = runSummary(run.name, result)
                    if nodes["metrics"] is not None:
                        self._showTable(nodes["metrics"])
                    self._refreshCompare()
                    slicer.util.resetThreeDViews()
        finally:
            self._updateGUIFromParameterNode()

    def onDemoButton(self) -> None:
        """Run the case study on the reference CT and segmentation and show its results."""
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("The demo failed."), waitCursor=True):
            self.logic.ensurePythonPackages()  # may ask to install packages: before the modal progress dialog
            dialog = slicer.util.createProgressDialog(windowTitle=_("Demo on the reference case"), maximum=0,
                                                      labelText=_("Preparing the reference case..."))

            def progress(stage: str) -> None:
                if dialog.wasCanceled:
                    raise ReconstructionCancelled()
                dialog.labelText = stage[:1].upper() + stage[1:] + "..."
                slicer.app.processEvents()

            try:
                slicer.app.processEvents()
                study = self.logic.runCaseStudy(p.referenceVolume, p.referenceSegmentation, p.spacingMm, progress)
                progress("adding the results to the scene")
                nodes = self.logic.addCaseStudyToScene(study, p.fuseThreeViews)
            except ReconstructionCancelled:
                self.ui.reconstructStatusLabel.text = _("Demo cancelled.")
                return
            finally:
                dialog.close()
            self.logic.showRadiograph(nodes["radiographs"][0])
            self._showTable(nodes["table"])
            slicer.util.resetThreeDViews()
            self.ui.reconstructStatusLabel.text = _(
                "Demo: {count} structures, {methods} in {seconds:.0f} s; surfaces coloured by their distance to "
                "the reference (blue inside, red outside).").format(
                    count=len(study.structures), methods=" and ".join(nodes["models"]),
                    seconds=sum(study.timing_s.values()))

    def _refreshCompare(self) -> None:
        """Fill the Compare combo boxes with the methods and structures of the runs in the scene."""
        methods, structures = self.logic.runMethodsAndStructures()
        for combo, values in ((self.ui.compareMethodComboBox, methods), (self.ui.compareStructureComboBox, structures)):
            current = combo.currentText
            wasBlocked = combo.blockSignals(True)
            combo.clear()
            for value in [ALL, *values]:
                combo.addItem(value)
            combo.currentIndex = max(combo.findText(current), 0)
            combo.blockSignals(wasBlocked)

    def onCompareChanged(self, index: int) -> None:
        method, structure = self.ui.compareMethodComboBox.currentText, self.ui.compareStructureComboBox.currentText
        self.logic.showModels("" if method == ALL else method, "" if structure == ALL else structure)

    @staticmethod
    def _showTable(tableNode) -> None:
        """Show a table in the four-up table layout."""
        layoutManager = slicer.app.layoutManager()
        if layoutManager is not None:
            layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
        applicationLogic = slicer.app.applicationLogic()
        applicationLogic.GetSelectionNode().SetActiveTableID(tableNode.GetID())
        applicationLogic.PropagateTableSelection()


#
# SingleImageReconLogic
#


class ReconstructionCancelled(Exception):
    """Raised by a progress callback to stop a long job between two stages."""


class ReconstructionRun:
    """A run started by :meth:`SingleImageReconLogic.startRun`: its name (the scene folder's), its
    folder, the files it reads, the command chain, and the reference segmentation node."""

    def __init__(self, name: str, runDir: str, inputs, chain, referenceSegmentation=None, bundlePath: str = ""):
        self.name, self.runDir, self.inputs, self.chain = name, runDir, inputs, chain
        self.referenceSegmentation, self.bundlePath = referenceSegmentation, bundlePath


class SingleImageReconLogic(ScriptedLoadableModuleLogic):
    """Turns MRML nodes into files and calls of the Lib packages; usable without the GUI."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self._model = None  # (bundle folder, device, network, metadata) of the last loaded bundle

    def getParameterNode(self):
        return SingleImageReconParameterNode(super().getParameterNode())

    @staticmethod
    def sampleCaseNames() -> list:
        """Names of the bundled sample cases (``SyntheticDataGenLib.cases.sample_data.list_sample_cases``)."""
        from SyntheticDataGenLib.cases.sample_data import list_sample_cases

        return list(list_sample_cases())

    def loadSampleCase(self, name: str):
        """A bundled sample case as (CT volume node, segmentation node named after its structures)."""
        from SyntheticDataGen import SyntheticDataGenLogic

        return SyntheticDataGenLogic().loadSampleCase(name)

    # ------------------------------------------------------------------ dependencies and models

    @staticmethod
    def ensurePythonPackages(askConfirmation: bool = True) -> None:
        """Make sure PyTorch (through the PyTorch extension) and ``PIP_REQUIREMENTS`` are installed,
        asking the user before installing anything. Raises RuntimeError when they are missing."""
        from SyntheticDataGen import SyntheticDataGenLogic

        SyntheticDataGenLogic.ensureTorch()  # first, so that pip does not fetch another PyTorch for MONAI
        missing = [requirement for name, requirement in PIP_REQUIREMENTS.items()
                   if importlib.util.find_spec(name) is None]
        if not missing:
            return
        if askConfirmation and not slicer.util.confirmOkCancelDisplay(
                _("The reconstruction needs these Python packages: {packages}. Install them now?").format(
                    packages=", ".join(missing))):
            raise RuntimeError(f"The reconstruction needs the Python packages {', '.join(missing)}")
        slicer.util.pip_install(" ".join(missing))

    @staticmethod
    def device(choice: str = "auto") -> str:
        """The torch device for a choice of ``DEVICES``: "auto" is "cuda" when PyTorch sees a GPU."""
        if choice != "auto":
            return choice
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    @staticmethod
    def bundleFolder(bundlePath: str = "") -> str:
        """The depth bundle folder: ``bundlePath``, or the bundled model when it is empty."""
        from SingleImageReconLib.commands.reconstruct import default_bundle_dir

        return str(bundlePath or default_bundle_dir())

    def loadModel(self, bundlePath: str = "", device: str = "auto") -> tuple:
        """The depth network of a bundle and its metadata (``networks.depth_bundle.load_bundle``), kept for the next call."""
        self.ensurePythonPackages()
        from SingleImageReconLib.networks.depth_bundle import load_bundle

        bundleDir, device = self.bundleFolder(bundlePath), self.device(device)
        if self._model is None or self._model[:2] != (bundleDir, device):
            self._model = (bundleDir, device, *load_bundle(bundleDir, device))
        return self._model[2], self._model[3]

    # ------------------------------------------------------------------ inputs

    @staticmethod
    def missingInputs(p) -> str:
        """Why Apply cannot start with these parameters ("" when it can): ``run_scene.missing_inputs``."""
        return _(run_scene.missing_inputs(p.radiograph, p.geometrySource, p.geometryPath))

    @staticmethod
    def dicomFile(radiographNode) -> str:
        """The DICOM file a radiograph node was loaded from (through Slicer's DICOM database)."""
        from SyntheticDataGenLib.errors import XreconInputError

        uids = (radiographNode.GetAttribute(run_scene.DICOM_UIDS_ATTRIBUTE) or "").split()
        database = slicer.app.dicomDatabase()
        path = database.fileForInstance(uids[0]) if uids and database else ""
        if not path or not os.path.isfile(path):
            raise XreconInputError(f"{radiographNode.GetName()}: its DICOM file is not in the DICOM database")
        return path

    def radiographGeometry(self, radiographNode, source: str = "radiograph", geometryPath: str = "",
                           preset: str = "ap", pixelSpacingMm: float = 0.2):
        """(``ProjectionGeometry`` or None, DICOM file or "") of a radiograph for a ``GEOMETRY_SOURCES`` choice;
        for "dicom" the run reads the file and its tags itself."""
        if source == "dicom":
            return None, self.dicomFile(radiographNode)
        return run_scene.radiograph_geometry(radiographNode, source, geometryPath, preset, pixelSpacingMm), ""

    def synthesiseRadiograph(self, volumeNode, segmentationNode, bundlePath: str = "", device: str = "auto"):
        """An AP test radiograph of a reference CT in the bundle's training geometry (``run_scene.add_test_radiograph``)."""
        from SingleImageReconLib.networks.bundle_format import read_bundle_metadata

        metadata = read_bundle_metadata(self.bundleFolder(bundlePath))
        return run_scene.add_test_radiograph(slicer.mrmlScene, volumeNode, segmentationNode, metadata,
                                             self.device(device))

    # ------------------------------------------------------------------ runs

    def startRun(self, radiographNode, geometrySource="radiograph", geometryPath="", geometryPreset="ap",
                 pixelSpacingMm=0.2, referenceVolume=None, referenceSegmentation=None, method="depth",
                 bundlePath="", device="auto", spacingMm=1.5, runsFolder="") -> ReconstructionRun:
        """Write the run's inputs (``run_scene.write_run_inputs``) and start ``xrecon reconstruct`` (then
        ``xrecon evaluate`` when both reference nodes are given) with Slicer's Python, not waiting."""
        from SingleImageReconLib.reconstruction_run import CommandChain, RunOptions, new_run_folder, run_commands
        from SyntheticDataGen import SyntheticDataGenLogic
        from SyntheticDataGenLib.dataset.generation_command import generation_environment, python_executable

        geometry, dicomFile = self.radiographGeometry(radiographNode, geometrySource, geometryPath, geometryPreset,
                                                      pixelSpacingMm)
        name = slicer.mrmlScene.GenerateUniqueName(f"{radiographNode.GetName()} {method}")
        runDir = str(new_run_folder(runsFolder or os.path.join(slicer.app.temporaryPath, "SingleImageRecon runs"), name))
        hasReference = bool(referenceVolume and referenceSegmentation)
        inputs = run_scene.write_run_inputs(runDir, radiographNode, geometry, referenceVolume if hasReference else None,
                                            referenceSegmentation if hasReference else None, dicomFile)
        options = RunOptions(method=method, bundle_dir=bundlePath, device=self.device(device), spacing_mm=spacingMm)
        commands = run_commands(python_executable(), inputs, runDir, options)
        env = generation_environment(SyntheticDataGenLogic.modulePythonPaths())
        logging.info("SingleImageRecon: " + " | ".join(" ".join(command) for command in commands))
        chain = CommandChain(commands, env=env, cwd=runDir, output_dir=runDir)
        return ReconstructionRun(name, runDir, inputs, chain, referenceSegmentation if hasReference else None,
                                 bundlePath)

    @staticmethod
    def stageText(stage: str) -> str:
        return STAGE_NAMES.get(stage, stage) + "..."

    def addRunToScene(self, run: ReconstructionRun) -> tuple:
        """Read a finished run back and add its folder (``run_scene.add_run``); returns (nodes, ``RunResult``)."""
        from SingleImageReconLib.networks.bundle_format import read_bundle_metadata
        from SingleImageReconLib.radiographs.radiograph_io import read_radiograph
        from SingleImageReconLib.reconstruction_run import read_run

        result = read_run(run.runDir)
        image = read_radiograph(run.inputs.radiograph_path).image
        order = read_bundle_metadata(self.bundleFolder(run.bundlePath))["xrecon"]["structures"]
        nodes = run_scene.add_run(slicer.mrmlScene, run.name, result, [image], run.referenceSegmentation, order)
        return nodes, result

    @staticmethod
    def runMethodsAndStructures() -> tuple:
        return run_scene.run_methods_and_structures(slicer.mrmlScene)

    @staticmethod
    def showModels(method: str = "", structure: str = "") -> int:
        """Show one method's / structure's run models (empty: all): ``run_scene.show_models``."""
        return run_scene.show_models(slicer.mrmlScene, method, structure)

    # ------------------------------------------------------------------ demo

    def runCaseStudy(self, volumeNode, segmentationNode, spacingMm: float = 1.5, progress=None):
        """The demo on a reference CT and its segmentation: ``SingleImageReconLib.demo.run_case_study``
        (AP alone, "depth", and three views fused, "fusion"). ``progress(stage)`` is called at each stage."""
        progress = progress or (lambda stage: None)
        progress("loading the network")
        model, metadata = self.loadModel()
        from SingleImageReconLib.demo import run_case_study

        progress("rasterising the reference segments")
        ctImage, segmentation = scene.reference_images(volumeNode, segmentationNode, metadata["xrecon"]["structures"])
        return run_case_study(ctImage, segmentation, model, metadata, spacing_mm=float(spacingMm),
                              device=self.device(), progress=progress)

    @staticmethod
    def addCaseStudyToScene(study, fuse: bool = True) -> dict:
        """Show a ``CaseStudy`` in the scene, each group of nodes in a folder: ``scene.add_case_study``."""
        return scene.add_case_study(slicer.mrmlScene, study, fuse)

    @staticmethod
    def showRadiograph(radiographNode) -> None:
        """Turn the Red slice view to the radiograph's detector plane and show it there as it is read
        (``SyntheticDataGenLogic.showPreview``); the slice also shows in 3D, in place."""
        from SyntheticDataGen import SyntheticDataGenLogic

        geometry = scene.radiograph_geometry(radiographNode)
        SyntheticDataGenLogic().showPreview(radiographNode, None, geometry, fit=False, fitSlice=True)


#
# SingleImageReconTest
#


class SingleImageReconTest(ScriptedLoadableModuleTest):
    """Self-test of the module; runs inside Slicer (Reload and Test, or ctest)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        for test in (self.test_SampleCaseList, self.test_LoadSampleCase, self.test_LoadSampleCaseTwice,
                     self.test_ParameterNodeDefaults, self.test_CaseStudy, self.test_BackgroundRun):
            self.setUp()
            test()

    @staticmethod
    def _reconstructionAvailable() -> bool:
        missing = [name for name in ("torch", *PIP_REQUIREMENTS) if importlib.util.find_spec(name) is None]
        if missing:
            logging.warning(f"SingleImageRecon self-test: {', '.join(missing)} not installed; "
                            "the reconstruction tests are skipped")
            return False
        return True

    def test_SampleCaseList(self):
        self.delayDisplay("Listing sample cases")
        names = SingleImageReconLogic.sampleCaseNames()
        self.assertTrue(names, "no bundled sample case")
        self.assertTrue(all(isinstance(n, str) and n for n in names))
        self.assertEqual(len(set(names)), len(names))
        self.delayDisplay("Test passed")

    def test_LoadSampleCase(self):
        self.delayDisplay("Loading a sample case")
        from SingleImageReconLib import self_test

        self_test.sample_case_checks(slicer.mrmlScene)
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

    def test_ParameterNodeDefaults(self):
        self.delayDisplay("Parameter node defaults")
        parameterNode = SingleImageReconLogic().getParameterNode()
        self.assertIsNone(parameterNode.radiograph)
        self.assertEqual((parameterNode.geometrySource, parameterNode.method, parameterNode.device),
                         ("radiograph", "depth", "auto"))
        self.assertEqual(parameterNode.spacingMm, 1.5)
        self.assertTrue(parameterNode.fuseThreeViews)
        with self.assertRaises(ValueError):
            parameterNode.spacingMm = 0.0  # outside WithinRange(0.5, 5.0)
        self.delayDisplay("Test passed")

    def test_CaseStudy(self):
        self.delayDisplay("Demo on a sample case, then reconstruction from its AP radiograph")
        if not self._reconstructionAvailable():
            return
        from SingleImageReconLib import self_test

        logic = SingleImageReconLogic()
        model, metadata = logic.loadModel()
        self_test.case_study_checks(slicer.mrmlScene, model, metadata, logic.device())
        self.delayDisplay("Test passed")

    def test_BackgroundRun(self):
        self.delayDisplay("A reconstruction run in a subprocess, measured and shown in its folder")
        if not self._reconstructionAvailable():
            return
        import tempfile

        from SingleImageReconLib import self_test
        from SingleImageReconLib.networks.bundle_format import read_bundle_metadata
        from SyntheticDataGen import SyntheticDataGenLogic
        from SyntheticDataGenLib.dataset.generation_command import generation_environment, python_executable

        logic = SingleImageReconLogic()
        metadata = read_bundle_metadata(logic.bundleFolder())
        with tempfile.TemporaryDirectory(prefix="SingleImageReconTest-") as runDir:
            self_test.reconstruction_run_checks(
                slicer.mrmlScene, python_executable(), generation_environment(SyntheticDataGenLogic.modulePythonPaths()),
                runDir, metadata, logic.device(), idle=slicer.app.processEvents)
        self.delayDisplay("Test passed")
