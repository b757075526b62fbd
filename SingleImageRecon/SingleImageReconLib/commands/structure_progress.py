"""Progress over structures, fed by the ``progress(done, total, name)`` callbacks of
:func:`..reconstruction.reconstruct.reconstruct_radiographs` and
:func:`..evaluation.evaluate.evaluate_surfaces`: a terminal bar, or ``progress DONE/TOTAL`` lines
for a program that follows the command (the SingleImageRecon module does)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from SyntheticDataGenLib.dataset.generation_job import progress_line

#: The ``--progress`` choices of the commands that report progress (generate, reconstruct, evaluate).
PROGRESS_MODES = ("bar", "lines", "none")


def add_progress_option(parser) -> None:
    """``--progress bar|lines|none`` on a subcommand's parser (lines: :func:`progress_line`)."""
    parser.add_argument("--progress", choices=PROGRESS_MODES, default="bar",
                        help="'lines' prints 'progress DONE/TOTAL' lines on stdout, for other programs")


@contextlib.contextmanager
def structure_progress(total: int, description: str, mode: str = "bar") -> Iterator[Callable[[int, int, str], None]]:
    """Yield a callback that reports ``done`` of ``total`` structures as ``mode`` says.

    "bar" moves a tqdm bar on stderr, "lines" prints ``progress DONE/TOTAL`` on stdout (flushed,
    one line a structure, and one at the start), "none" is silent.
    """
    if mode == "lines":
        print(progress_line(0, total), flush=True)
        yield lambda done, _total, _name: print(progress_line(done, total), flush=True)
        return
    if mode == "none":
        yield lambda done, _total, _name: None
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=description, unit="structure", file=sys.stderr, dynamic_ncols=True) as bar:
        def progress(done: int, _total: int, name: str) -> None:
            bar.set_postfix_str(name)
            bar.update(done - bar.n)

        yield progress
