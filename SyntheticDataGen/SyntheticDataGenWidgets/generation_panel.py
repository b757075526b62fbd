"""The Batch generation section: ``xrecon generate`` in another process, with its progress, log and Cancel."""

import shlex

from slicer.i18n import tr as _

from .job_follower import JobFollower

#: How often the GUI reads the generator's output (milliseconds).
GENERATION_POLL_MS = 100


class GenerationPanel:
    """Shows a started ``GenerationJob`` in ``ui.generationProgressBar``, ``generationStatusLabel``
    and ``generationLogTextEdit``; ``changed()`` is called when it starts and ends."""

    def __init__(self, ui, changed) -> None:
        self.ui = ui
        self._changed = changed
        self._follower = JobFollower(GENERATION_POLL_MS, self._onEvent, self._onFinished)
        self.ui.generationProgressBar.setRange(0, 1)
        self.ui.generationProgressBar.setValue(0)

    @property
    def running(self) -> bool:
        return self._follower.running

    def updateButtons(self, missing: list) -> None:
        """Generate is on when nothing is ``missing`` (what the user must still select) and no run goes on."""
        running = self.running
        self.ui.generateButton.enabled = not missing and not running
        self.ui.generateButton.toolTip = (
            _("A generation is running.") if running
            else _("Select {what}.").format(what=", ".join(missing)) if missing
            else _("Generate the training set into the output folder in a separate process; "
                   "a folder that holds part of a set is continued."))
        self.ui.cancelButton.enabled = running

    def starting(self) -> None:
        """Before the inputs are exported (which takes a moment): clear the last run's output."""
        self.ui.generationLogTextEdit.clear()
        self.ui.generationStatusLabel.text = _("Exporting the CT and the segmentation...")

    def startFailed(self) -> None:
        self.ui.generationStatusLabel.text = _("Could not start the generation.")

    def follow(self, job, views: int) -> None:
        self.ui.generationLogTextEdit.appendPlainText(shlex.join(job.args))
        self.ui.generationProgressBar.setRange(0, max(1, views))
        self.ui.generationProgressBar.setValue(0)
        self.ui.generationStatusLabel.text = _("Generating into {folder}...").format(folder=job.output_dir)
        self._follower.follow(job)
        self._changed()

    def cancel(self) -> None:
        """Stop the generator (terminate, then kill if it does not stop); the folder keeps what was done."""
        if self.running:
            self._follower.cancel()
            self.ui.generationStatusLabel.text = _("Cancelling...")
            self.ui.cancelButton.enabled = False

    def cleanup(self) -> None:
        self._follower.stop()

    def _onEvent(self, job, event) -> None:
        if event[0] == "progress":
            done, total = event[1], event[2]
            self.ui.generationProgressBar.setRange(0, max(1, total))
            self.ui.generationProgressBar.setValue(done)
            if not job.cancelled:
                self.ui.generationStatusLabel.text = _("Generated {done} of {total}.").format(done=done, total=total)
        elif event[0] == "log":
            self.ui.generationLogTextEdit.appendPlainText(event[1])

    def _onFinished(self, job) -> None:
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
        self._changed()
