"""A disk that fills up mid-run: one line, exit status 2, and nothing left behind.

The disk is "filled" by a file-size limit (RLIMIT_FSIZE) on the xrecon process: every write
past 100 kB fails as it would on a full disk, with no need for a tiny tmpfs or a quota.
"""

import subprocess
import sys

import pytest

from conftest import HANG_TIMEOUT_S

resource = pytest.importorskip("resource")  # POSIX only
signal = pytest.importorskip("signal")

LIMIT_BYTES = 100_000


def _with_a_full_disk() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT_BYTES, LIMIT_BYTES))


def _xrecon_on_a_full_disk(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "SingleImageReconLib.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=HANG_TIMEOUT_S, preexec_fn=_with_a_full_disk)


def _assert_clean_failure(result: subprocess.CompletedProcess, command: str, folder) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"xrecon {command}: error: ") and "write" in last
    assert list(folder.iterdir()) == []  # no output folder, no temporaries


def test_render_on_a_full_disk_fails_cleanly(tmp_path):
    result = _xrecon_on_a_full_disk("render", "--case", "chest", "--detector-size-px", 256, 256,
                                    "--out", tmp_path / "render")
    _assert_clean_failure(result, "render", tmp_path)


def test_reconstruct_on_a_full_disk_fails_cleanly(tmp_path):
    images = tmp_path / "inputs"
    rendered = subprocess.run([sys.executable, "-m", "SingleImageReconLib.cli", "render", "--case", "abdomen-pelvis",
                               "--bone-only", "--out", images], capture_output=True, text=True, timeout=HANG_TIMEOUT_S)
    assert rendered.returncode == 0, rendered.stderr
    out = tmp_path / "out"
    out.mkdir()
    result = _xrecon_on_a_full_disk("reconstruct", "--image", images / "drr.nrrd", "--geometry",
                                    images / "geometry.json", "--out", out / "reconstruction")
    _assert_clean_failure(result, "reconstruct", out)
