"""Shared fixtures: where the real data lives, and a runner for the ``xrecon`` command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("XRECON_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The project's shared real CT cases (``../shared/data``); CI always has them."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"shared data not found at {SHARED_DATA}")
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


def run_xrecon(*args: str) -> subprocess.CompletedProcess:
    """Run ``xrecon`` in a fresh interpreter, as a user would, and capture its output."""
    return subprocess.run([sys.executable, "-m", "SingleImageReconLib.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)
