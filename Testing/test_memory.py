"""Jobs too big for the memory free now are refused before any work, with a line that says why."""

import pytest

from conftest import xrecon_in_process
from SyntheticDataGenLib import memory
from SyntheticDataGenLib.errors import XreconInputError

GIB = 2 ** 30


def test_estimates_cover_what_was_measured():
    # peak resident memory grew by 1.93 GB from a 256² to a 2048² render of 25 structures,
    # and by 142 MB from a 6 mm to a 3 mm registration grid of the chest sample (316 x 262 x 331 mm)
    grown = memory.render_bytes(2048, 2048, 25, 0) - memory.render_bytes(256, 256, 25, 0)
    assert 1.93e9 <= grown <= 2 * 1.93e9
    extent = (316.0, 262.0, 331.0)
    grown = memory.registration_bytes(extent, 3.0) - memory.registration_bytes(extent, 6.0)
    assert 1.42e8 <= grown <= 2 * 1.42e8


def test_check_fits_names_the_job_the_need_and_the_way_out(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: 2 * GIB)
    memory.check_fits(1 * GIB, "a small job", "never said")
    with pytest.raises(XreconInputError, match=r"a big job needs about 3\.0 GiB of memory, but only 2\.0 GiB are "
                                               r"free; use less"):
        memory.check_fits(3 * GIB, "a big job", "use less")


def test_unknown_free_memory_refuses_nothing(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: None)
    memory.check_fits(1e18, "anything", "")


@pytest.mark.parametrize("args, advice", [
    (("render", "--case", "chest", "--detector-size-px", 4096, 4096), "smaller --detector-size-px"),
    (("generate", "--case", "chest", "--views", 1, "--detector-size-px", 4096, 4096), "smaller --detector-size-px"),
    (("labels", "--ct", "CASE/chest/ct.nii.gz", "--atlas", "CASE/abdomen-pelvis/ct.nii.gz",
      "CASE/abdomen-pelvis/labels.nii.gz", "CASE/abdomen-pelvis/labels.csv", "--spacing-mm", 0.5),
     "larger --spacing-mm"),
])
def test_commands_refuse_what_would_not_fit_before_writing(monkeypatch, capfd, tmp_path, args, advice):
    from SyntheticDataGenLib.cases.sample_data import resources_dir

    monkeypatch.setattr(memory, "available_bytes", lambda: GIB)
    cases = resources_dir() / "SampleData"
    args = [str(arg).replace("CASE", str(cases)) for arg in args]
    status, _, err = xrecon_in_process(capfd, *args, "--out", tmp_path / "out")
    assert status == 2
    assert "GiB of memory, but only 1.0 GiB are free" in err and advice in err
    assert not (tmp_path / "out").exists()
