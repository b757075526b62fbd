"""A terminal progress bar over structures, fed by the ``progress(done, total, name)`` callbacks
of :func:`..reconstruction.reconstruct_radiographs` and :func:`..evaluation.evaluate_surfaces`."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def structure_progress(total: int, description: str) -> Iterator[Callable[[int, int, str], None]]:
    """Yield a callback that moves a tqdm bar (on stderr) to ``done`` of ``total`` structures."""
    from tqdm import tqdm

    with tqdm(total=total, desc=description, unit="structure", file=sys.stderr, dynamic_ncols=True) as bar:
        def progress(done: int, _total: int, name: str) -> None:
            bar.set_postfix_str(name)
            bar.update(done - bar.n)

        yield progress
