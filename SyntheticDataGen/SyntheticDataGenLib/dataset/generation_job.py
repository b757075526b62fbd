"""A generator subprocess that a GUI follows without waiting: progress, log lines, cancel.

The SyntheticDataGen module runs ``xrecon generate --progress lines`` through :class:`GenerationJob`
and calls :meth:`GenerationJob.poll` from a timer; the GUI itself never blocks on the process.
Qt-free, so the same class runs under pytest; :class:`Job` is what the GUI relies on, so a test
can hand it a stand-in.
"""

from __future__ import annotations

import collections
import os
import queue
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, Union, runtime_checkable

#: ``xrecon generate --progress lines`` prints one such line at the start and after each sample.
PROGRESS_LINE = re.compile(r"^\s*progress\s+(\d+)\s*/\s*(\d+)\s*$")

#: What :meth:`Job.poll` returns: ("progress", done, total), ("log", text) or ("exit", return code).
JobEvent = Union[tuple[str, int, int], tuple[str, str], tuple[str, int]]


def progress_line(done: int, total: int) -> str:
    """The line a command prints for ``--progress lines``; :func:`parse_progress_line` reads it back."""
    return f"progress {done}/{total}"


def parse_progress_line(text: str) -> tuple[int, int] | None:
    """(done, total) of a ``progress DONE/TOTAL`` line; None for any other line."""
    match = PROGRESS_LINE.match(text)
    return (int(match.group(1)), int(match.group(2))) if match else None


@runtime_checkable
class Job(Protocol):
    """A running generation as the GUI sees it; :class:`GenerationJob` is the real one."""

    args: list[str]
    output_dir: str | None
    done: int  # samples finished, counting those already there when the run started
    total: int | None  # samples of the whole run; None until the first progress line
    return_code: int | None  # None while running
    cancelled: bool
    log: collections.deque  # the last output lines other than progress

    @property
    def running(self) -> bool: ...

    def poll(self) -> list[JobEvent]: ...

    def cancel(self, force: bool = False) -> None: ...


class GenerationJob:
    """A subprocess whose output a thread reads; :meth:`poll` hands it over without waiting.

    Lines ``progress DONE/TOTAL`` become ("progress", done, total) events, other non-blank lines
    ("log", text), the end ("exit", return code). :meth:`cancel` terminates the process group
    (the Python launcher's child included) and :meth:`poll` kills it if it has not stopped
    ``kill_after_s`` seconds later. ``args`` is run as a list, never through a shell.
    """

    def __init__(self, args: Sequence[str], env: Mapping[str, str] | None = None, cwd: str | None = None,
                 output_dir: str | None = None, kill_after_s: float = 5.0):
        self.args = [str(arg) for arg in args]
        self.output_dir = output_dir
        self.kill_after_s = kill_after_s
        self.done = 0
        self.total: int | None = None
        self.return_code: int | None = None
        self.cancelled = False
        self.log: collections.deque = collections.deque(maxlen=500)  # the last lines, for error reports
        self._cancel_time: float | None = None
        self._killed = False
        self._queue: queue.Queue = queue.Queue()
        options = dict(stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       encoding="utf-8", errors="replace", bufsize=1, env=env, cwd=cwd)
        if os.name == "nt":
            options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)
        else:
            options["start_new_session"] = True  # its own process group: cancel reaches the launcher's child
        self.process = subprocess.Popen(self.args, **options)
        self._reader = threading.Thread(target=self._read, name="xrecon-generate-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for line in self.process.stdout:
                # progress bars redraw with carriage returns: keep what is on screen last
                self._queue.put(("line", line.rstrip("\r\n").split("\r")[-1]))
        finally:
            self._queue.put(("exit", self.process.wait()))

    @property
    def running(self) -> bool:
        """True until :meth:`poll` has seen the end of the process."""
        return self.return_code is None

    def poll(self) -> list[JobEvent]:
        """Events since the last call, without waiting; also kills a cancelled process that lingers."""
        events: list[JobEvent] = []
        while True:
            try:
                kind, value = self._queue.get_nowait()
            except queue.Empty:
                break
            if kind == "exit":
                self.return_code = value
                events.append(("exit", value))
                continue
            progress = parse_progress_line(value)
            if progress:
                self.done, self.total = progress
                events.append(("progress", self.done, self.total))
            elif value.strip():
                self.log.append(value)
                events.append(("log", value))
        if (self.cancelled and self.return_code is None and not self._killed
                and time.monotonic() - self._cancel_time > self.kill_after_s):
            self._signal(kill=True)
        return events

    def cancel(self, force: bool = False) -> None:
        """Ask the process to stop (terminate); ``force`` kills it at once. Does not wait."""
        if self.return_code is not None or self.process.poll() is not None:
            return  # it has ended already (poll reports the end)
        if not self.cancelled:
            self.cancelled = True
            self._cancel_time = time.monotonic()
            self._signal(kill=force)
        elif force:
            self._signal(kill=True)

    def _signal(self, kill: bool) -> None:
        if kill:
            self._killed = True
        try:
            if os.name == "nt":
                # taskkill /T reaches the launcher's child; without /F a console program ignores it
                subprocess.run(["taskkill", "/F", "/T", "/PID", str(self.process.pid)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            else:
                os.killpg(self.process.pid, signal.SIGKILL if kill else signal.SIGTERM)
        except OSError:  # the group is gone or not ours: signal the process itself
            if kill:
                self.process.kill()
            else:
                self.process.terminate()

    def wait(self, timeout_s: float | None = None, idle: Callable[[], object] | None = None,
             interval_s: float = 0.1) -> int:
        """:func:`wait_for` this job; returns its return code."""
        return wait_for(self, timeout_s, idle, interval_s)


def wait_for(job: Job, timeout_s: float | None = None, idle: Callable[[], object] | None = None,
             interval_s: float = 0.1) -> int:
    """Poll a job until it ends (for scripts and tests); returns its return code.

    ``idle`` is called between polls (``slicer.app.processEvents`` keeps a GUI alive). On
    timeout the job is killed and TimeoutError raised.
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        job.poll()
        if not job.running:
            return job.return_code
        if deadline is not None and time.monotonic() > deadline:
            job.cancel(force=True)
            raise TimeoutError(f"{shlex.join(job.args)} did not finish in {timeout_s} s")
        if idle is not None:
            idle()
        time.sleep(interval_s)
