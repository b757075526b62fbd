"""SingleImageRecon: 3D bone surfaces from one or a few radiographs (3D Slicer module).

This file stays thin: it turns GUI state into calls of ``SingleImageReconLib`` /
``SyntheticDataGenLib`` (Slicer-free, also used by the ``xrecon`` command) and MRML nodes into
arrays. World coordinates are Slicer's RAS, in millimetres.
"""

import importlib.util
import logging
import os
from typing import Annotated, Optional

import vtk

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper, WithinRange

from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode

from SingleImageReconLib import run_scene, scene
from SingleImageReconLib.reconstruction_run import STAGE_NAMES
from SingleImageReconWidgets.compare_panel import ComparePanel
from SingleImageReconWidgets.run_panel import RunPanel
from SingleImageReconWidgets.sample_case_panel import SampleCasePanel
from SyntheticDataGenWidgets.module_paths import modulePythonPaths
from SyntheticDataGenWidgets.path_fields import PathFields
from SyntheticDataGenWidgets.python_packages import ensurePackages
from SyntheticDataGenWidgets.views import showOnRedView

#: Python packages the reconstruction needs besides Slicer's own and PyTorch: import name -> pip requirement.
PIP_REQUIREMENTS = {"monai": "monai>=1.3", "safetensors": "safetensors>=0.4", "skimage": "scikit-image>=0.22",
                    "scipy": "scipy>=1.10", "fast_simplification": "fast-simplification>=0.1.7"}
# Choices of the parameter node; Testing/test_module_bindings.py checks them against the Lib's.
GEOMETRY_SOURCES = ["radiograph", "file", "dicom", "preset"]
PRESETS = ["ap", "pa", "lateral-left", "lateral-right"]
METHODS = ["depth", "ssm", "combined"]
DEVICES = ["auto", "cpu", "cuda"]


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
<li><b>Demo</b> runs <code>xrecon demo</code> on the reference CT in the background: an AP and two oblique
radiographs, every method from the AP view and three views fused, all measured, in a folder of its own.</li>
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
        # the parts of the GUI, each bound to its widgets (SyntheticDataGenWidgets, SingleImageReconWidgets)
        self.samples = self.paths = self.runs = self.compare = None

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

        self.samples = SampleCasePanel(self.ui, self.logic)
        # the optional paths are str fields, which parameterNodeWrapper does not bind to a ctkPathLineEdit
        self.paths = PathFields({"geometryPath": self.ui.geometryPathLineEdit,
                                 "bundlePath": self.ui.bundlePathLineEdit, "runsFolder": self.ui.runsFolderLineEdit})
        self.ui.synthesiseButton.connect("clicked(bool)", self.onSynthesiseButton)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.demoButton.connect("clicked(bool)", self.onDemoButton)
        self.compare = ComparePanel(self.ui, self.logic)
        self.runs = RunPanel(self.ui, self.logic, self._onRunFinished)
        self.compare.refresh()
        self.initializeParameterNode()

    def cleanup(self) -> None:
        """Called when the application closes: a running reconstruction is stopped."""
        if self.runs:
            self.runs.cleanup()
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
        self.compare.refresh()
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode: Optional[SingleImageReconParameterNode]) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGUIFromParameterNode)
        self._parameterNode = inputParameterNode
        self.samples.setParameterNode(inputParameterNode)
        self.paths.setParameterNode(inputParameterNode)
        if self._parameterNode:
            # Widgets carrying the Qt dynamic property "SlicerParameterName" are bound here.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGUIFromParameterNode)
        self._updateGUIFromParameterNode()

    def _updateGUIFromParameterNode(self, caller=None, event=None) -> None:
        p = self._parameterNode
        self.samples.update()
        self.paths.update()
        source = p.geometrySource if p else ""
        for widget, shown in ((self.ui.geometryPathLabel, source == "file"), (self.ui.geometryPathLineEdit, source == "file"),
                              (self.ui.geometryPresetLabel, source == "preset"),
                              (self.ui.geometryPresetComboBox, source == "preset"),
                              (self.ui.pixelSpacingLabel, source == "preset"), (self.ui.pixelSpacingSpinBox, source == "preset")):
            widget.visible = shown
        running = self.runs.run is not None
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
        self._startRun(_("Could not start the reconstruction."), lambda: self.logic.startRun(
            p.radiograph, p.geometrySource, p.geometryPath, p.geometryPreset, p.pixelSpacingMm,
            p.referenceVolume, p.referenceSegmentation, p.method, p.bundlePath, p.device, p.spacingMm,
            p.runsFolder))

    def onDemoButton(self) -> None:
        """Start the demo on the reference CT and segmentation in the background (``xrecon demo``)."""
        p = self._parameterNode
        self._startRun(_("Could not start the demo."), lambda: self.logic.startDemo(
            p.referenceVolume, p.referenceSegmentation, p.bundlePath, p.device, p.spacingMm, p.runsFolder))

    def _startRun(self, failure: str, start) -> None:
        with slicer.util.tryWithErrorDisplay(failure, waitCursor=True):
            self.logic.ensurePythonPackages()  # may ask to install packages, before anything runs
            self.runs.start(start())
        self._updateGUIFromParameterNode()

    def onCancelButton(self) -> None:
        self.runs.cancel()

    def _onRunFinished(self) -> None:
        self.compare.refresh()
        self._updateGUIFromParameterNode()


#
# SingleImageReconLogic
#


class ReconstructionRun:
    """A run started by :meth:`SingleImageReconLogic.startRun` or ``startDemo``: its name (the scene
    folder's), its folder, the files it reads, the command chain, the reference segmentation node,
    and whether it is a demo."""

    def __init__(self, name: str, runDir: str, inputs, chain, referenceSegmentation=None, bundlePath: str = "",
                 demo: bool = False):
        self.name, self.runDir, self.inputs, self.chain = name, runDir, inputs, chain
        self.referenceSegmentation, self.bundlePath, self.demo = referenceSegmentation, bundlePath, demo


class SingleImageReconLogic(ScriptedLoadableModuleLogic):
    """Turns MRML nodes into files and calls of the Lib packages; usable without the GUI."""

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
        """PyTorch (through the PyTorch extension) and ``PIP_REQUIREMENTS``, asking before installing."""
        ensurePackages(PIP_REQUIREMENTS, "The reconstruction", askConfirmation)

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
        from SingleImageReconLib.reconstruction_run import run_commands

        geometry, dicomFile = self.radiographGeometry(radiographNode, geometrySource, geometryPath, geometryPreset,
                                                      pixelSpacingMm)
        hasReference = bool(referenceVolume and referenceSegmentation)
        return self._start(f"{radiographNode.GetName()} {method}", runsFolder, run_commands, bundlePath, device,
                           spacingMm, referenceSegmentation if hasReference else None,
                           lambda runDir: run_scene.write_run_inputs(
                               runDir, radiographNode, geometry, referenceVolume if hasReference else None,
                               referenceSegmentation if hasReference else None, dicomFile), method=method)

    def startDemo(self, volumeNode, segmentationNode, bundlePath="", device="auto", spacingMm=1.5,
                  runsFolder="") -> ReconstructionRun:
        """Write the reference CT and segments (``run_scene.write_reference_inputs``) and start
        ``xrecon demo`` on them with Slicer's Python, not waiting."""
        from SingleImageReconLib.reconstruction_run import RunInputs, demo_commands

        if not volumeNode or not segmentationNode:
            raise ValueError("Select a reference CT and its segmentation")
        return self._start(f"{volumeNode.GetName()} demo", runsFolder, demo_commands, bundlePath, device, spacingMm,
                           segmentationNode, lambda runDir: RunInputs(**run_scene.write_reference_inputs(
                               os.path.join(runDir, "inputs"), volumeNode, segmentationNode)), demo=True)

    def _start(self, name, runsFolder, commands, bundlePath, device, spacingMm, referenceSegmentation, writeInputs,
               method="depth", demo=False) -> ReconstructionRun:
        """A new run folder named after ``name``, ``writeInputs(runDir)`` into it, and ``commands``
        (``reconstruction_run.run_commands`` or ``demo_commands``) started in a ``CommandChain``."""
        from SingleImageReconLib.reconstruction_run import CommandChain, RunOptions, new_run_folder
        from SyntheticDataGenLib.dataset.generation_command import generation_environment, python_executable

        name = slicer.mrmlScene.GenerateUniqueName(name)
        runDir = str(new_run_folder(runsFolder or os.path.join(slicer.app.temporaryPath, "SingleImageRecon runs"), name))
        inputs = writeInputs(runDir)
        options = RunOptions(method=method, bundle_dir=bundlePath, device=self.device(device), spacing_mm=spacingMm)
        argsList = commands(python_executable(), inputs, runDir, options)
        logging.info("SingleImageRecon: " + " | ".join(" ".join(args) for args in argsList))
        chain = CommandChain(argsList, env=generation_environment(modulePythonPaths()),
                             cwd=runDir, output_dir=runDir)
        return ReconstructionRun(name, runDir, inputs, chain, referenceSegmentation, bundlePath, demo)

    @staticmethod
    def stageText(stage: str) -> str:
        return STAGE_NAMES.get(stage, stage) + "..."

    def addRunToScene(self, run: ReconstructionRun) -> tuple:
        """Read a finished run back and add its folder (``run_scene.add_run``, or ``add_demo`` for a
        demo); returns (nodes, one line about it)."""
        from SingleImageReconLib.networks.bundle_format import read_bundle_metadata
        from SingleImageReconLib.radiographs.radiograph_io import read_radiograph
        from SingleImageReconLib.reconstruction_run import read_run, run_summary

        if run.demo:
            nodes = run_scene.add_demo(slicer.mrmlScene, run.name, os.path.join(run.runDir, "demo"),
                                       run.referenceSegmentation)
            return nodes, _("'{name}': {methods}; surfaces coloured by their distance to the reference.").format(
                name=run.name, methods=", ".join(f"{method} {len(models)}" for method, models in nodes["models"].items()))
        result = read_run(run.runDir)
        image = read_radiograph(run.inputs.radiograph_path).image
        order = read_bundle_metadata(self.bundleFolder(run.bundlePath))["xrecon"]["structures"]
        nodes = run_scene.add_run(slicer.mrmlScene, run.name, result, [image], run.referenceSegmentation, order)
        return nodes, run_summary(run.name, result)

    @staticmethod
    def runMethodsAndStructures() -> tuple:
        return run_scene.run_methods_and_structures(slicer.mrmlScene)

    @staticmethod
    def showModels(method: str = "", structure: str = "") -> int:
        """Show one method's / structure's run models (empty: all): ``run_scene.show_models``."""
        return run_scene.show_models(slicer.mrmlScene, method, structure)

    @staticmethod
    def showRadiograph(radiographNode) -> None:
        """Turn the Red slice view to the radiograph's detector plane and show it there as it is read
        (``views.showOnRedView``); the slice also shows in 3D, in place."""
        showOnRedView(radiographNode, None, scene.radiograph_geometry(radiographNode), fit=False, fitSlice=True)


#
# SingleImageReconTest
#


class SingleImageReconTest(ScriptedLoadableModuleTest):
    """Self-test of the module; runs inside Slicer (Reload and Test, or ctest). The bodies are plain
    functions of an MRML scene in ``SingleImageReconLib.self_test``, which pytest also runs against
    slicer-core; the parameter node needs the application and is checked here."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        import tempfile

        from SingleImageReconLib import self_test
        from SingleImageReconLib.networks.bundle_format import read_bundle_metadata
        from SyntheticDataGenLib.dataset.generation_command import generation_environment, python_executable

        for name, body in (("Parameter node defaults", self.parameterNodeDefaults),
                           ("Loading a sample case", self_test.sample_case_checks),
                           ("Loading a sample case twice", self_test.second_load_checks)):
            self.setUp()
            self.delayDisplay(name)
            body(slicer.mrmlScene)
        missing = [name for name in ("torch", *PIP_REQUIREMENTS) if importlib.util.find_spec(name) is None]
        if missing:
            logging.warning(f"SingleImageRecon self-test: {', '.join(missing)} not installed; "
                            "the reconstruction tests are skipped")
            return
        logic = SingleImageReconLogic()
        python, env = python_executable(), generation_environment(modulePythonPaths())
        metadata = read_bundle_metadata(logic.bundleFolder())
        for name, run in (("Apply: a reconstruction run in a subprocess, measured and shown in its folder",
                           lambda runDir: self_test.reconstruction_run_checks(
                               slicer.mrmlScene, python, env, runDir, metadata, logic.device(),
                               idle=slicer.app.processEvents)),
                          ("Demo: xrecon demo in a subprocess, shown in its folder",
                           lambda runDir: self_test.demo_run_checks(slicer.mrmlScene, python, env, runDir,
                                                                    logic.device(), idle=slicer.app.processEvents))):
            self.setUp()
            self.delayDisplay(name)
            with tempfile.TemporaryDirectory(prefix="SingleImageReconTest-") as runDir:
                run(runDir)
        self.delayDisplay("Test passed")

    def parameterNodeDefaults(self, _scene):
        names = SingleImageReconLogic.sampleCaseNames()
        self.assertTrue(names)
        self.assertEqual(names, sorted(set(names)))  # each once
        parameterNode = SingleImageReconLogic().getParameterNode()
        self.assertIsNone(parameterNode.radiograph)
        self.assertEqual((parameterNode.geometrySource, parameterNode.method, parameterNode.device),
                         ("radiograph", "depth", "auto"))
        self.assertEqual(parameterNode.spacingMm, 1.5)
        with self.assertRaises(ValueError):
            parameterNode.spacingMm = 0.0  # outside WithinRange(0.5, 5.0)
