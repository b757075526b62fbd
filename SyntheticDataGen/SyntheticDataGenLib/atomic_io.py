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


OUTPUT_MARKER = ".xrecon-output"  # in every output folder: the command that wrote it


def check_output_folder(out_dir: str | os.PathLike, command: str) -> None:
    """Refuse, before any work, an output that :func:`staged_output` could not replace whole.

    ``out_dir`` may be missing, an empty folder, or an earlier output of the same ``command``
    (it holds the marker that says so); a file, or a folder holding anything else, is refused
    with an XreconInputError, so that no user file is ever deleted or mixed with a run.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise XreconInputError(f"{out_dir} is a file; give a folder to write into")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        marker = out_dir / OUTPUT_MARKER
        written_by = marker.read_text().strip() if marker.is_file() else None
        if written_by != command:
            raise XreconInputError(f"{out_dir} holds files that are not an earlier 'xrecon {command}' output; "
                                   "give a new or empty folder")


@contextlib.contextmanager
def staged_output(out_dir: str | os.PathLike, command: str) -> Iterator[Path]:
    """Yield a temporary folder beside ``out_dir``; on success it replaces ``out_dir`` whole.

    ``out_dir`` must pass :func:`check_output_folder` (checked first). The new folder holds a
    marker naming ``command``; an earlier run there is moved aside and removed only after the
    new one is in place, so the folder is always one run, never a mix of two. On an exception
    the temporary folder is removed and ``out_dir`` is left as it was.
    """
    out_dir = Path(out_dir)
    check_output_folder(out_dir, command)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    except OSError as error:
        raise XreconInputError(f"cannot write to {out_dir}: {error.strerror or error}") from None
    try:
        yield staging
        (staging / OUTPUT_MARKER).write_text(command + "\n")
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it private; a plain mkdir would not
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
            os.replace(out_dir, old / out_dir.name)
            os.replace(staging, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out_dir)
    except OSError as error:
        raise XreconInputError(f"cannot write to {out_dir}: {error.strerror or error}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, what: str = "", suffix: str = ".partial") -> Iterator[Path]:
    """Yield a temporary file beside ``path`` to write; when the block succeeds it replaces
    ``path`` in one rename, so readers never see half a file.

    The temporary name is unique, so processes writing the same file at once do not collide
    (the last rename wins). ``suffix`` ends it, for writers that choose the format by the name.

    Permissions follow the umask, as for a plain ``open``. An OSError (in the block or the
    rename) raises XreconInputError "cannot write <what> <path>: <reason>"; whatever fails, no
    temporary file is left behind.
    """
    path = Path(path)
    umask = _umask()
    temporary = None
    try:
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
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


def read_json(path: str | os.PathLike, missing: str) -> dict:
    """The object a JSON file holds; ``missing`` is the error message when it does not exist.

    Unreadable or malformed files, and files holding anything but an object (every JSON file
    xrecon reads is one), raise XreconInputError naming the file.
    """
    try:
        document = json.loads(Path(path).read_text())
        if not isinstance(document, dict):
            raise XreconInputError(f"{path} holds a JSON {type(document).__name__}, not an object")
        return document
    except FileNotFoundError:
        raise XreconInputError(missing) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise XreconInputError(f"{path} is not valid JSON: {error}") from None
    except OSError as error:
        raise XreconInputError(f"cannot read {path}: {error.strerror or error}") from None
