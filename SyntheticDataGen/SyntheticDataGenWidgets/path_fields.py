"""ctkPathLineEdits kept in step with str fields of a parameter node.

parameterNodeWrapper binds a ctkPathLineEdit only to a ``pathlib.Path`` field, where an empty
path reads as "."; an optional path ("" for none) is a str field, synchronised here instead.
"""


class PathFields:
    """``{field name: ctkPathLineEdit}``: an edit writes its field, ``update()`` writes the edits."""

    def __init__(self, edits: dict) -> None:
        self._edits = edits
        self._parameterNode = None
        for field, lineEdit in edits.items():
            lineEdit.connect("currentPathChanged(QString)", lambda path, field=field: self._onEdited(field, path))

    def setParameterNode(self, parameterNode) -> None:
        self._parameterNode = parameterNode

    def update(self) -> None:
        """Show the parameter node's paths (without echoing the change back)."""
        for field, lineEdit in self._edits.items():
            if self._parameterNode and lineEdit.currentPath != getattr(self._parameterNode, field):
                wasBlocked = lineEdit.blockSignals(True)
                lineEdit.currentPath = getattr(self._parameterNode, field)
                lineEdit.blockSignals(wasBlocked)

    def _onEdited(self, field: str, path: str) -> None:
        if self._parameterNode and getattr(self._parameterNode, field) != path:
            setattr(self._parameterNode, field, path)
