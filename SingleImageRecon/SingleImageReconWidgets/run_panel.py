"""The Reconstruct section while a run (Apply or Demo) goes on in the background: progress, Cancel
and, at the end, its results in the scene."""

import slicer
from slicer.i18n import tr as _

from SyntheticDataGenWidgets.job_follower import JobFollower
from SyntheticDataGenWidgets.views import showTable

#: How often the GUI reads the run's output (milliseconds).
RUN_POLL_MS = 200


class RunPanel:
    """Follows a ``ReconstructionRun`` in ``ui.progressBar`` and ``ui.reconstructStatusLabel``; when
    it has finished, adds it to the scene (``logic.addRunToScene``) and calls ``finished()``."""

    def __init__(self, ui, logic, finished) -> None:
        self.ui = ui
        self.logic = logic
        self._finished = finished
        self.run = None  # the running ReconstructionRun
        self._follower = JobFollower(RUN_POLL_MS, self._onEvent, self._onFinished)

    def start(self, run) -> None:
        self.run = run
        self.ui.progressBar.visible = True
        self.ui.progressBar.maximum, self.ui.progressBar.value = 0, 0  # busy until the first count
        self.ui.reconstructStatusLabel.text = _("Starting '{name}'...").format(name=run.name)
        self._follower.follow(run.chain)

    def cancel(self) -> None:
        if self._follower.running:
            self._follower.cancel()
            self.ui.reconstructStatusLabel.text = _("Cancelling...")

    def cleanup(self) -> None:
        self._follower.stop()

    def _onEvent(self, chain, event) -> None:
        if event[0] == "progress":
            self.ui.progressBar.maximum, self.ui.progressBar.value = event[2], event[1]
            self.ui.reconstructStatusLabel.text = self.logic.stageText(chain.stage)
        elif event[0] == "log" and event[1].startswith("xrecon demo: "):  # the demo's stages
            self.ui.reconstructStatusLabel.text = event[1][len("xrecon demo: "):]

    def _onFinished(self, chain) -> None:
        run, self.run = self.run, None
        self.ui.progressBar.visible = False
        try:
            if chain.cancelled:
                self.ui.reconstructStatusLabel.text = _("'{name}' cancelled.").format(name=run.name)
            elif chain.return_code != 0:
                lastLines = list(chain.log)[-20:]
                self.ui.reconstructStatusLabel.text = _("'{name}' failed: {reason}").format(
                    name=run.name, reason=lastLines[-1] if lastLines else chain.return_code)
                slicer.util.errorDisplay(_("The reconstruction failed."), detailedText="\n".join(lastLines))
            else:
                with slicer.util.tryWithErrorDisplay(_("Could not show the results."), waitCursor=True):
                    nodes, summary = self.logic.addRunToScene(run)
                    self.ui.reconstructStatusLabel.text = summary
                    if nodes["radiographs"]:
                        self.logic.showRadiograph(nodes["radiographs"][0])
                    if nodes["metrics"] is not None:
                        showTable(nodes["metrics"])
                    slicer.util.resetThreeDViews()
        finally:
            self._finished()
