"""The DRR preview: rendered on demand, or live once the user pauses after a change."""

import logging

import qt

from slicer.i18n import tr as _

from .python_packages import TorchUnavailableError

#: The live preview waits this long after the last change before it renders (milliseconds).
PREVIEW_DEBOUNCE_MS = 300


class LivePreview:
    """Runs ``render()`` (which returns the line for ``ui.previewStatusLabel``) when asked, and,
    with the parameter node's ``livePreview`` on, ``PREVIEW_DEBOUNCE_MS`` after the last change of
    ``key()`` (the parameters the preview depends on). A state whose preview failed is not
    retried until it changes; the errors of a live preview go to the status line, not a dialog."""

    def __init__(self, ui, key, render) -> None:
        self.ui = ui
        self._key, self._render = key, render
        self._parameterNode = None
        self._lastKey = None  # parameters of the preview on screen (or of the one that failed)
        self._timer = qt.QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(PREVIEW_DEBOUNCE_MS)
        self._timer.connect("timeout()", self._onTimeout)

    def setParameterNode(self, parameterNode) -> None:
        self._parameterNode = parameterNode

    def _live(self) -> bool:
        p = self._parameterNode
        return bool(p and p.livePreview and p.inputVolume)

    def schedule(self) -> None:
        """After a change: (re)start the wait when live and the parameters differ from the shown preview's."""
        if not self._live():
            self._timer.stop()
        elif self._key() != self._lastKey:
            self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def clear(self) -> None:
        self._lastKey = None
        self.ui.previewStatusLabel.text = ""

    def renderNow(self) -> None:
        """Render at once (live or not); errors are raised to the caller too."""
        self._run(interactive=True)

    def _onTimeout(self) -> None:
        if self._live():
            self._run(interactive=False)

    def _run(self, interactive: bool) -> None:
        self._lastKey = self._key()
        if not interactive:
            qt.QApplication.setOverrideCursor(qt.Qt.WaitCursor)
        try:
            self.ui.previewStatusLabel.text = self._render()
        except Exception as error:
            self.ui.previewStatusLabel.text = _("Preview failed: {error}").format(error=error)
            if isinstance(error, TorchUnavailableError) and self._live():
                self._parameterNode.livePreview = False  # do not ask again on every change
            if interactive:
                raise
            logging.warning(f"Preview failed: {error}")
        finally:
            if not interactive:
                qt.QApplication.restoreOverrideCursor()
