"""The Compare section: show one method's or one structure's models across the runs in the scene."""

#: The combo boxes' entry for every method / structure.
ALL = "all"


class ComparePanel:
    """``ui.compareMethodComboBox`` and ``ui.compareStructureComboBox``, listing what the runs in
    the scene hold (``logic.runMethodsAndStructures``) and showing the choice (``logic.showModels``)."""

    def __init__(self, ui, logic) -> None:
        self.ui = ui
        self.logic = logic
        self.ui.compareMethodComboBox.connect("currentIndexChanged(int)", self._onChanged)
        self.ui.compareStructureComboBox.connect("currentIndexChanged(int)", self._onChanged)

    def refresh(self) -> None:
        """List the methods and structures of the runs in the scene, keeping the current choice."""
        methods, structures = self.logic.runMethodsAndStructures()
        for combo, values in ((self.ui.compareMethodComboBox, methods), (self.ui.compareStructureComboBox, structures)):
            current = combo.currentText
            wasBlocked = combo.blockSignals(True)
            combo.clear()
            for value in [ALL, *values]:
                combo.addItem(value)
            combo.currentIndex = max(combo.findText(current), 0)
            combo.blockSignals(wasBlocked)

    def _onChanged(self, index: int = 0) -> None:
        method, structure = self.ui.compareMethodComboBox.currentText, self.ui.compareStructureComboBox.currentText
        self.logic.showModels("" if method == ALL else method, "" if structure == ALL else structure)
