"""SingleImageRecon: 3D bone surfaces from one or a few radiographs (3D Slicer module).

This file stays thin: it turns GUI state into calls of ``SingleImageReconLib`` /
``SyntheticDataGenLib`` (Slicer-free, also used by the ``xrecon`` command) and MRML nodes into
arrays. World coordinates are Slicer's RAS, in millimetres.
"""

import importlib.util
import logging
from typing import Annotated, Optional

import vtk

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin
from slicer.parameterNodeWrapper import parameterNodeWrapper, WithinRange

from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode

from SingleImageReconLib import scene
from SingleImageReconLib.scene import GEOMETRY_ATTRIBUTE

#: Python packages the reconstruction needs besides Slicer's own and PyTorch: import name -> pip requirement.
PIP_REQUIREMENTS = {"monai": "monai>=1.3", "safetensors": "safetensors>=0.4", "skimage": "scikit-image>=0.22",
                    "scipy": "scipy>=1.10", "fast_simplification": "fast-simplification>=0.1.7"}


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
patient: a bundled MONAI network predicts each bone's mask and dual-face depth maps (where each ray
enters and leaves the bone), which are lifted to closed surfaces. Results are compared with the CT
reference segmentation when one is available.
<ul>
<li><b>Sample case</b>: load a bundled CT with reference bone labels as a volume and a segmentation whose
segments are named after the structures; it becomes the reference.</li>
<li><b>Reference</b>: the patient's CT and bone segmentation, when available: ground truth for evaluation.</li>
<li><b>Reconstruct from radiograph</b>: a radiograph (a one-slice scalar volume, bone bright, for example a
DRR) and its projection geometry (a JSON file as <code>xrecon render</code> writes; radiographs added by
this module carry theirs) give one surface model per bone. With a reference, the models are coloured by
their signed distance to it (blue inside, red outside, &plusmn;5 mm) and a metrics table is added.</li>
<li><b>Demo on the reference case</b>: renders an AP radiograph of the reference CT, reconstructs from it
alone (<i>depth</i>) and, with <i>Fuse three views</i>, also from three views fused (<i>fusion</i>, the
C-arm turned 15&deg; to either side), and shows the radiographs on their detector planes, the models
coloured by distance, the reference surfaces and a metrics table (ASSD, HD95, Chamfer in mm; Dice, IoU, F1).</li>
</ul>
Needs PyTorch (the PyTorch extension) and the Python packages MONAI, safetensors, scikit-image and SciPy
(offered for installation on first use). Coordinates are RAS, in mm.
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
    radiograph - radiograph to reconstruct from: a one-slice scalar volume [1, height, width], bone bright.
    geometryPath - projection geometry JSON of that radiograph (DESIGN.md format, RAS mm); empty: the
        geometry the radiograph node carries (attribute "xrecon.geometry").
    spacingMm - voxel size of the surface extraction grid, mm.
    fuseThreeViews - the demo also shows the reconstruction from three fused views.
    """

    sampleCase: str = ""
    referenceVolume: vtkMRMLScalarVolumeNode
    referenceSegmentation: vtkMRMLSegmentationNode
    radiograph: vtkMRMLScalarVolumeNode
    geometryPath: str = ""
    spacingMm: Annotated[float, WithinRange(0.5, 5.0)] = 1.5
    fuseThreeViews: bool = True


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
        # parameterNodeWrapper binds a ctkPathLineEdit only to a pathlib.Path (where "" reads as "."),
        # so the geometry file is a str synchronised by hand
        self.ui.geometryPathLineEdit.connect("currentPathChanged(QString)", self.onGeometryPathChanged)
        self.ui.reconstructButton.connect("clicked(bool)", self.onReconstructButton)
        self.ui.demoButton.connect("clicked(bool)", self.onDemoButton)

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
        self.ui.reconstructStatusLabel.text = ""

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

        p = self._parameterNode
        if p and self.ui.geometryPathLineEdit.currentPath != p.geometryPath:
            wasBlocked = self.ui.geometryPathLineEdit.blockSignals(True)
            self.ui.geometryPathLineEdit.currentPath = p.geometryPath
            self.ui.geometryPathLineEdit.blockSignals(wasBlocked)
        hasGeometry = bool(p and p.radiograph and (p.geometryPath or p.radiograph.GetAttribute(GEOMETRY_ATTRIBUTE)))
        self.ui.reconstructButton.enabled = hasGeometry
        self.ui.reconstructButton.toolTip = (
            _("Reconstruct every bone the network knows from the radiograph; with a reference CT and segmentation, "
              "also measure the surfaces against it.") if hasGeometry
            else _("Select a radiograph and its geometry file.") if not (p and p.radiograph)
            else _("Select the geometry file of the radiograph."))
        hasReference = bool(p and p.referenceVolume and p.referenceSegmentation)
        self.ui.demoButton.enabled = hasReference
        self.ui.demoButton.toolTip = (
            _("Render radiographs of the reference CT, reconstruct the bones from them and measure the surfaces "
              "against the reference segmentation.") if hasReference
            else _("Select a reference CT and its segmentation (or load a sample case)."))

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

    def onGeometryPathChanged(self, path: str) -> None:
        if self._parameterNode and self._parameterNode.geometryPath != path:
            self._parameterNode.geometryPath = path

    def onReconstructButton(self) -> None:
        """Reconstruct from the selected radiograph; measure against the reference when one is selected."""
        p = self._parameterNode
        self.ui.reconstructStatusLabel.text = _("Reconstructing...")
        slicer.app.processEvents()
        with slicer.util.tryWithErrorDisplay(_("Reconstruction failed."), waitCursor=True):
            self.logic.ensurePythonPackages()  # may ask to install packages: before the modal progress dialog
            dialog = slicer.util.createProgressDialog(windowTitle=_("Reconstruction"), maximum=0,
                                                      labelText=_("Loading the network..."))

            def steps(stage: str):
                """A per-structure progress callback for one stage: the dialog counts the structures."""
                def report(done: int, total: int, name: str) -> None:
                    if dialog.wasCanceled:
                        raise ReconstructionCancelled()
                    dialog.maximum, dialog.value = total, done
                    dialog.labelText = f"{stage} ({done}/{total}) {name}"
                    slicer.app.processEvents()
                return report

            try:
                reconstruction = self.logic.reconstructRadiograph(p.radiograph, p.geometryPath, p.spacingMm,
                                                                  progress=steps(_("Meshing")))
                evaluations = None
                if p.referenceVolume and p.referenceSegmentation:
                    evaluations = self.logic.evaluateSurfaces(reconstruction.surfaces, p.referenceVolume,
                                                              p.referenceSegmentation,
                                                              progress=steps(_("Measuring against the reference")))
            except ReconstructionCancelled:
                self.ui.reconstructStatusLabel.text = _("Reconstruction cancelled.")
                return
            except Exception:
                self.ui.reconstructStatusLabel.text = _("Reconstruction failed.")
                raise
            finally:
                dialog.close()
            name = p.radiograph.GetName()
            models = self.logic.addReconstructionToScene(reconstruction, evaluations, prefix=name)
            missing = [structure for structure in reconstruction.structures if structure not in models]
            status = _("{count} surfaces from '{name}'.").format(count=len(models), name=name)
            if missing:
                status += " " + _("Not found: {names}.").format(names=", ".join(missing))
            if evaluations:
                self._showTable(self.logic.addMetricsTable({"depth": evaluations}, f"{name} metrics"))
                status += " " + _("{count} measured against the reference.").format(count=len(evaluations))
            elif evaluations is not None:
                status += " " + _("None of them is in the reference segmentation.")
            self.ui.reconstructStatusLabel.text = status
            slicer.util.resetThreeDViews()

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
            except Exception:
                self.ui.reconstructStatusLabel.text = _("The demo failed.")
                raise
            finally:
                dialog.close()
            self.logic.showRadiograph(nodes["radiographs"][0], study.geometries[0])
            self._showTable(nodes["table"])
            slicer.util.resetThreeDViews()
            seconds = sum(study.timing_s.values())
            self.ui.reconstructStatusLabel.text = _(
                "Demo: {count} structures, {methods} in {seconds:.0f} s; surfaces coloured by their distance to "
                "the reference (blue inside, red outside).").format(
                    count=len(study.structures), methods=" and ".join(nodes["models"]), seconds=seconds)

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


class SingleImageReconLogic(ScriptedLoadableModuleLogic):
    """Turns MRML nodes into arrays and calls the Lib packages; usable without the GUI."""

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
        """Load a bundled sample case: the CT as a scalar volume and its label map as a segmentation
        on the CT grid whose segments are named after the structures of the case's label table; no
        label map volume is added. Returns (volumeNode, segmentationNode)."""
        from SyntheticDataGen import SyntheticDataGenLogic

        return SyntheticDataGenLogic().loadSampleCase(name)

    # ------------------------------------------------------------------ network

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
    def device() -> str:
        """The torch device the networks run on: "cuda" when a GPU is available, else "cpu"."""
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def loadModel(self, bundleDir=None) -> tuple:
        """The depth network of a MONAI bundle (default: the bundled one) and its metadata, on
        :meth:`device`: ``SingleImageReconLib.networks.depth_bundle.load_bundle``. Kept for the next call."""
        self.ensurePythonPackages()
        from SingleImageReconLib.networks.depth_bundle import load_bundle
        from SingleImageReconLib.commands.reconstruct import default_bundle_dir

        bundleDir, device = str(bundleDir or default_bundle_dir()), self.device()
        if self._model is None or self._model[:2] != (bundleDir, device):
            self._model = (bundleDir, device, *load_bundle(bundleDir, device))
        return self._model[2], self._model[3]

    # ------------------------------------------------------------------ nodes -> arrays

    @staticmethod
    def radiographArray(radiographNode):
        """The radiograph's voxels as a float32 [height, width] array: ``scene.radiograph_array``."""
        return scene.radiograph_array(radiographNode)

    @staticmethod
    def radiographGeometry(radiographNode, geometryPath: str = "", sizePx=None):
        """The radiograph's ``ProjectionGeometry`` (from ``geometryPath``, else the node's attribute),
        checked against ``sizePx`` (width, height): ``scene.radiograph_geometry``."""
        return scene.radiograph_geometry(radiographNode, geometryPath, sizePx)

    @staticmethod
    def referenceImages(volumeNode, segmentationNode, names=None) -> tuple:
        """The CT (SimpleITK, HU) and the named segments (None: all; names the segmentation lacks are
        skipped) as a ``Segmentation`` on the CT grid: ``scene.reference_images``."""
        return scene.reference_images(volumeNode, segmentationNode, names)

    # ------------------------------------------------------------------ reconstruction

    def reconstructRadiograph(self, radiographNode, geometryPath: str = "", spacingMm: float = 1.5, progress=None):
        """Reconstruct every structure of the bundled network from one radiograph.

        Args:
            radiographNode: one-slice scalar volume, bone bright (see :meth:`radiographArray`).
            geometryPath: its projection geometry JSON; empty: the geometry the node carries.
            spacingMm: voxel size of the surface extraction grid, mm.
            progress: called with (structures done, in all, the last one's name) as each is meshed.

        Returns a ``SingleImageReconLib.reconstruction.reconstruct.Reconstruction`` (surfaces in RAS mm).
        """
        image = self.radiographArray(radiographNode)
        geometry = self.radiographGeometry(radiographNode, geometryPath, (image.shape[1], image.shape[0]))
        model, metadata = self.loadModel()
        from SingleImageReconLib.reconstruction.reconstruct import reconstruct_radiographs

        return reconstruct_radiographs(model, metadata, [image], [geometry], spacing_mm=float(spacingMm),
                                       device=self.device(), progress=progress or (lambda done, total, name: None))

    def evaluateSurfaces(self, surfaces: dict, volumeNode, segmentationNode, progress=None) -> dict:
        """Measure surfaces (structure name -> RAS polydata) against the segments of the same names,
        rasterised on the reference CT's grid: ``SingleImageReconLib.evaluation.evaluate.evaluate_surfaces``
        (``progress`` as there). Returns {name: StructureEvaluation}; structures the segmentation
        lacks are left out."""
        from SingleImageReconLib.evaluation.evaluate import evaluate_surfaces
        from SyntheticDataGenLib.cases.ct_io import ijk_to_ras

        _ctImage, segmentation = self.referenceImages(volumeNode, segmentationNode, list(surfaces))
        if not segmentation.names:
            return {}
        return evaluate_surfaces(surfaces, segmentation, ijk_to_ras(segmentation.reference), progress=progress)

    def runCaseStudy(self, volumeNode, segmentationNode, spacingMm: float = 1.5, progress=None):
        """The demo on a reference CT and its segmentation: ``SingleImageReconLib.demo.run_case_study``.

        Renders an AP radiograph and two oblique ones (C-arm turned 15 degrees to either side),
        reconstructs from the AP view alone ("depth") and from all three fused ("fusion"), and
        measures both against the segmentation. ``progress(stage: str)`` is called at each stage.
        Returns the ``CaseStudy``.
        """
        progress = progress or (lambda stage: None)
        progress("loading the network")
        model, metadata = self.loadModel()
        from SingleImageReconLib.demo import run_case_study

        progress("rasterising the reference segments")
        ctImage, segmentation = self.referenceImages(volumeNode, segmentationNode, metadata["xrecon"]["structures"])
        return run_case_study(ctImage, segmentation, model, metadata, spacing_mm=float(spacingMm),
                              device=self.device(), progress=progress)

    # ------------------------------------------------------------------ results -> scene

    @staticmethod
    def addReconstructionToScene(reconstruction, evaluations=None, prefix: str = "Reconstruction") -> dict:
        """One model node "PREFIX STRUCTURE" per reconstructed surface: ``scene.add_reconstruction``."""
        return scene.add_reconstruction(slicer.mrmlScene, reconstruction, evaluations, prefix)

    @staticmethod
    def addMetricsTable(evaluationsByMethod: dict, name: str = "Metrics"):
        """A table node with one row per method and structure: ``scene.add_evaluation_table``."""
        return scene.add_evaluation_table(slicer.mrmlScene, evaluationsByMethod, name)

    @staticmethod
    def addCaseStudyToScene(study, fuse: bool = True) -> dict:
        """Show a ``CaseStudy`` in the scene, each group of nodes in a folder: ``scene.add_case_study``."""
        return scene.add_case_study(slicer.mrmlScene, study, fuse)

    @staticmethod
    def showRadiograph(radiographNode, geometry) -> None:
        """Turn the Red slice view to the radiograph's detector plane and show it there as it is read
        (``SyntheticDataGenLogic.showPreview``); the slice also shows in 3D, in place."""
        from SyntheticDataGen import SyntheticDataGenLogic

        SyntheticDataGenLogic().showPreview(radiographNode, None, geometry, fit=False, fitSlice=True)


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
        self.setUp()
        self.test_ParameterNodeDefaults()
        self.setUp()
        self.test_CaseStudy()

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
        self.assertEqual(parameterNode.geometryPath, "")
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
