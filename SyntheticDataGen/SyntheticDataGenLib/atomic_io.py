"""Files in and out: JSON read with one-line errors, and writes that a failure or an interruption
never leaves half-done."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import XreconInputError


@contextlib.contextmanager
def staged_output(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``out_dir``; on success its files move into ``out_dir``.

    Each file lands with an atomic rename, after all of them were written (a sub-folder replaces
    the same-named folder of an earlier run); on an exception the temporary folder is removed
    and ``out_dir`` is left as it was.
    """
    out_dir = Path(out_dir)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    except OSError as error:
        raise XreconInputError(f"cannot write to {out_dir}: {error.strerror or error}") from None
    try:
        yield staging
        out_dir.mkdir(exist_ok=True)
        for item in sorted(staging.iterdir()):
            target = out_dir / item.name
            if item.is_dir() and target.is_dir():  # a folder of an earlier run: swap it out whole
                old = Path(tempfile.mkdtemp(prefix=f".{item.name}.", suffix=".old", dir=out_dir))
                os.replace(target, old / item.name)
                os.replace(item, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(item, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, what: str = "") -> Iterator[Path]:
    """Yield a temporary file beside ``path`` to write; when the block succeeds it replaces
    ``path`` in one rename, so readers never see half a file.

    Permissions follow the umask, as for a plain ``open``. An OSError (in the block or the
    rename) raises XreconInputError "cannot write <what> <path>: <reason>"; whatever fails, no
    temporary file is left behind.
    """
    path = Path(path)
    umask = os.umask(0)
    os.umask(umask)
    temporary = None
    try:
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
        os.close(handle)
        temporary = Path(name)
        yield temporary
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except OSError as error:
        raise XreconInputError(f"cannot write {what + ' ' if what else ''}{path}: {error.strerror or error}") from None
    finally:
        if temporary is not None:
            temporary.unlink(missing_ok=True)


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Write a text file (UTF-8) through :func:`atomic_path`."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def read_json(path: str | os.PathLike, missing: str):
    """The content of a JSON file; ``missing`` is the error message when it does not exist.

    Unreadable or malformed files raise XreconInputError naming the file.
    """
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise XreconInputError(missing) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise XreconInputError(f"{path} is not valid JSON: {error}") from None
    except OSError as error:
        raise XreconInputError(f"cannot read {path}: {error.strerror or error}") from None
