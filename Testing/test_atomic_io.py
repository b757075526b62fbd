"""Atomic writes: readers never see half a file, and writers of the same file at once do not collide."""

import numpy as np
import pytest
import SimpleITK as sitk

from SyntheticDataGenLib.atomic_io import atomic_path
from SyntheticDataGenLib.errors import XreconInputError


def test_two_writers_of_one_file_at_once_both_finish(tmp_path):
    # two generation shards computing the same registration cache used to share one temporary
    # name, and the second rename failed with FileNotFoundError
    target = tmp_path / "field.nii.gz"
    image = sitk.GetImageFromArray(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    with atomic_path(target, suffix=".partial.nii.gz") as first, atomic_path(target, suffix=".partial.nii.gz") as second:
        assert first != second and first.name.endswith(".nii.gz")
        sitk.WriteImage(image, str(first))
        sitk.WriteImage(image, str(second))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(target))),
                                  sitk.GetArrayFromImage(image))
    assert [p.name for p in tmp_path.iterdir()] == ["field.nii.gz"], "no temporary is left behind"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("old")
    with pytest.raises(XreconInputError, match="cannot write notes"):
        with atomic_path(target, "notes") as temporary:
            temporary.write_text("half")
            raise OSError(28, "No space left on device")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_a_run_replaces_an_earlier_run_whole(tmp_path):
    from SyntheticDataGenLib.atomic_io import staged_output

    out = tmp_path / "recon"
    with staged_output(out, "reconstruct") as staging:
        (staging / "femur_left.vtk").write_text("first run")
        (staging / "reconstruction.json").write_text("{}")
    with staged_output(out, "reconstruct") as staging:
        (staging / "reconstruction.json").write_text('{"second": true}')
    assert sorted(p.name for p in out.iterdir()) == [".xrecon-output", "reconstruction.json"], \
        "the first run's surface must not survive beside the second run"
    assert [p.name for p in tmp_path.iterdir()] == ["recon"], "nothing is left beside it"


def test_a_folder_of_other_files_or_a_file_is_refused_and_left_alone(tmp_path):
    from SyntheticDataGenLib.atomic_io import check_output_folder, staged_output

    mine = tmp_path / "my-folder"
    mine.mkdir()
    (mine / "thesis.docx").write_text("precious")
    with pytest.raises(XreconInputError, match="not an earlier 'xrecon render' output"):
        with staged_output(mine, "render"):
            pass
    assert (mine / "thesis.docx").read_text() == "precious"
    demo = tmp_path / "demo"
    with staged_output(demo, "demo") as staging:
        (staging / "metrics.json").write_text("{}")
    with pytest.raises(XreconInputError, match="not an earlier 'xrecon reconstruct' output"):
        check_output_folder(demo, "reconstruct")
    with pytest.raises(XreconInputError, match="is a file"):
        check_output_folder(demo / "metrics.json", "reconstruct")
    check_output_folder(tmp_path / "new", "reconstruct")  # a missing folder is fine
