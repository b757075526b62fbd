"""Follow a job that runs in another process without blocking Slicer: a Qt timer drains its events."""

import qt


class JobFollower:
    """Polls a job every ``pollMs`` ms: a ``GenerationJob`` or a ``CommandChain``, whose ``poll()``
    returns ("progress", done, total) and ("log", line) events and whose ``running`` turns False
    when it ends. Each event goes to ``onEvent(job, event)``, the ended job to ``onFinished(job)``."""

    def __init__(self, pollMs: int, onEvent, onFinished) -> None:
        self.job = None
        self._onEvent, self._onFinished = onEvent, onFinished
        self._timer = qt.QTimer()
        self._timer.setInterval(pollMs)
        self._timer.connect("timeout()", self._poll)

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.running

    def follow(self, job) -> None:
        self.job = job
        self._timer.start()

    def cancel(self, force: bool = False) -> None:
        """Stop the job (terminate, then kill; ``force`` kills at once); its events still arrive."""
        if self.running:
            self.job.cancel(force=force)

    def stop(self) -> None:
        """On the module's cleanup: kill the job and stop polling."""
        self.cancel(force=True)
        self._timer.stop()

    def _poll(self) -> None:
        job = self.job
        if job is None:
            self._timer.stop()
            return
        for event in job.poll():
            self._onEvent(job, event)
        if not job.running:
            self._timer.stop()
            self.job = None
            self._onFinished(job)
