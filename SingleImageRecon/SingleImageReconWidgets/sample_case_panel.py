"""The Sample case section: a bundled case loaded as the reference CT and segmentation.

The sample cases come from the Lib at run time, so the combo box is kept in step with the
parameter node's ``sampleCase`` here rather than through "SlicerParameterName" (which needs
the choices when the parameter node class is defined).
"""

import logging

import slicer
from slicer.i18n import tr as _


class SampleCasePanel:
    """``ui.sampleCaseComboBox``, ``ui.loadButton`` and ``ui.sampleStatusLabel``."""

    def __init__(self, ui, logic) -> None:
        self.ui = ui
        self.logic = logic
        self._parameterNode = None
        combo = self.ui.sampleCaseComboBox
        try:
            names = self.logic.sampleCaseNames()
        except Exception as e:  # the GUI stays usable; the reason is shown to the user
            logging.error(f"Cannot list the sample cases: {e}")
            names = []
            self.ui.sampleStatusLabel.text = _("Cannot list the sample cases: {error}").format(error=e)
        for name in names:
            combo.addItem(name)
        combo.connect("currentIndexChanged(int)", self._onChanged)
        self.ui.loadButton.connect("clicked(bool)", self.onLoadButton)

    def setParameterNode(self, parameterNode) -> None:
        """Follow a parameter node; one without a sample case gets the first."""
        self._parameterNode = parameterNode
        if parameterNode and not parameterNode.sampleCase and self.ui.sampleCaseComboBox.count > 0:
            parameterNode.sampleCase = self.ui.sampleCaseComboBox.currentText

    def update(self) -> None:
        p, combo = self._parameterNode, self.ui.sampleCaseComboBox
        if p and p.sampleCase:
            index = combo.findText(p.sampleCase)
            if index >= 0 and index != combo.currentIndex:
                wasBlocked = combo.blockSignals(True)
                combo.currentIndex = index
                combo.blockSignals(wasBlocked)
        self.ui.loadButton.enabled = bool(p) and combo.count > 0

    def onLoadButton(self) -> None:
        """Load the selected sample case and use it as the reference CT and segmentation."""
        p, name = self._parameterNode, self.ui.sampleCaseComboBox.currentText
        with slicer.util.tryWithErrorDisplay(_("Failed to load the sample case."), waitCursor=True):
            volumeNode, segmentationNode = self.logic.loadSampleCase(name)
            p.sampleCase, p.referenceVolume, p.referenceSegmentation = name, volumeNode, segmentationNode
            self.ui.sampleStatusLabel.text = _("Loaded '{name}': CT {volume}, {count} structures.").format(
                name=name, volume=volumeNode.GetName(),
                count=segmentationNode.GetSegmentation().GetNumberOfSegments())
            slicer.util.setSliceViewerLayers(background=volumeNode, fit=True)

    def _onChanged(self, index: int) -> None:
        if self._parameterNode and index >= 0:
            self._parameterNode.sampleCase = self.ui.sampleCaseComboBox.itemText(index)
