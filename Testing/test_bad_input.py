"""Bad input to ``xrecon``: a non-zero exit and a one-line message, never a traceback."""

import gzip

import numpy as np
import SimpleITK as sitk

from conftest import HANG_TIMEOUT_S, run_xrecon
from SyntheticDataGenLib.cases.sample_data import sample_case

CASE = sample_case("abdomen-pelvis")


def write_like_ct(path, array, reference=None):
    image = sitk.GetImageFromArray(array)
    if reference is not None:
        image.CopyInformation(reference)
    sitk.WriteImage(image, str(path))
    return path


def bad_inputs(tmp_path):
    """(name, xrecon arguments, what the message must say) for each kind of bad input."""
    ct = sitk.ReadImage(str(CASE.ct_path))
    labels = ["--labels", CASE.labels_path, "--labels-table", CASE.table_path]
    junk = tmp_path / "junk.nrrd"
    junk.write_bytes(np.random.default_rng(0).bytes(5000))
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(CASE.ct_path.read_bytes()[: CASE.ct_path.stat().st_size // 2])
    raw_truncated = tmp_path / "raw_truncated.nii"
    raw = gzip.decompress(CASE.ct_path.read_bytes())
    raw_truncated.write_bytes(raw[: len(raw) * 3 // 4])
    mr_like = write_like_ct(tmp_path / "mr.nii.gz", np.random.default_rng(1).integers(0, 4000, (20, 30, 40)).astype(np.int16))
    nan_ct = sitk.GetArrayFromImage(ct).astype(np.float32)
    nan_ct[10, 10, 10] = np.nan
    nan_path = write_like_ct(tmp_path / "nan.nrrd", nan_ct, ct)  # ITK reads NaN in NIfTI as 0
    other_grid = tmp_path / "other_grid.nii.gz"
    sitk.WriteImage(sitk.Resample(sitk.ReadImage(str(CASE.labels_path)), [61, 50, 56], sitk.Transform(),
                                  sitk.sitkNearestNeighbor, ct.GetOrigin(), [6.0, 6.0, 6.0], ct.GetDirection()),
                    str(other_grid))
    table_with_empty = tmp_path / "labels.csv"
    table_with_empty.write_text(CASE.table_path.read_text() + "200,skull\n")
    bad_table = tmp_path / "bad.csv"
    bad_table.write_text("label,name\n1,femur\n")
    return [
        ("missing file", ["info", "--ct", tmp_path / "nope.nii.gz"], "not found"),
        ("unreadable file", ["info", "--ct", junk], "cannot read CT"),
        ("truncated gzip", ["info", "--ct", truncated], "truncated"),
        ("truncated raw NIfTI", ["info", "--ct", raw_truncated], "truncated"),
        ("not a CT (MR-like)", ["info", "--ct", mr_like], "does not look like a CT"),
        ("not a CT (a label map)", ["info", "--ct", CASE.labels_path], "does not look like a CT"),
        ("NaN in CT", ["info", "--ct", nan_path], "NaN"),
        ("empty structure", ["info", "--ct", CASE.ct_path, "--labels", CASE.labels_path,
                             "--labels-table", table_with_empty, "--structures", "skull"], "is empty"),
        ("missing structure", ["info", "--ct", CASE.ct_path, *labels, "--structures", "femur_middle"],
         "available: sacrum"),
        ("labels on another grid", ["info", "--ct", CASE.ct_path, "--labels", other_grid,
                                    "--labels-table", CASE.table_path], "another grid"),
        ("label map without table", ["info", "--ct", CASE.ct_path, "--labels", CASE.labels_path], "labels table"),
        ("table without id,structure", ["info", "--ct", CASE.ct_path, "--labels", CASE.labels_path,
                                        "--labels-table", bad_table], "columns 'id' and 'structure'"),
        ("unknown sample case", ["info", "--case", "knee"], "available: abdomen-pelvis"),
        ("structures without labels", ["info", "--ct", CASE.ct_path, "--structures", "femur_left"], "needs --labels"),
    ]


def test_each_bad_input_gives_one_line_and_a_nonzero_exit(tmp_path):
    for name, args, message in bad_inputs(tmp_path):
        result = run_xrecon(*args)
        assert result.returncode == 2, f"{name}: exit {result.returncode}, stderr {result.stderr!r}"
        assert "Traceback" not in result.stderr, name
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, f"{name}: {result.stderr!r}"
        assert message in lines[0], f"{name}: {lines[0]!r}"
        assert result.stdout == "", name


def test_labels_on_another_grid_are_resampled_when_asked(tmp_path):
    other = tmp_path / "other.nii.gz"
    ct = sitk.ReadImage(str(CASE.ct_path))
    sitk.WriteImage(sitk.Resample(sitk.ReadImage(str(CASE.labels_path)), [61, 50, 56], sitk.Transform(),
                                  sitk.sitkNearestNeighbor, ct.GetOrigin(), [6.0, 6.0, 6.0], ct.GetDirection()),
                    str(other))
    result = run_xrecon("info", "--ct", CASE.ct_path, "--labels", other, "--labels-table", CASE.table_path,
                        "--resample-labels", "--structures", "femur_left")
    assert result.returncode == 0, result.stderr
    assert '"femur_left"' in result.stdout


def test_cropped_labels_on_the_same_lattice_are_accepted(tmp_path):
    """Slicer writes segmentations cropped to their extent: same voxel centres, smaller box."""
    cropped = sitk.RegionOfInterest(sitk.ReadImage(str(CASE.labels_path)), [80, 80, 60], [20, 10, 0])
    path = tmp_path / "cropped.nii.gz"
    sitk.WriteImage(cropped, str(path))
    result = run_xrecon("info", "--ct", CASE.ct_path, "--labels", path, "--labels-table", CASE.table_path,
                        "--structures", "femur_left")
    assert result.returncode == 0, result.stderr


def test_help_and_argument_errors_load_no_heavy_library():
    # `xrecon --help` and a usage error must not wait for torch, MONAI, VTK or SimpleITK (issue 12)
    import subprocess
    import sys

    probe = ("import sys\nfrom SingleImageReconLib.cli import build_parser\n"
             "for argv in (['--help'], ['reconstruct', '--help'], ['render', '--lao']):\n"
             "    try:\n        build_parser().parse_args(argv)\n    except SystemExit:\n        pass\n"
             "print(sorted(m for m in ('torch', 'monai', 'vtk', 'SimpleITK') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=HANG_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_impossible_requests_are_refused_before_any_work(tmp_path):
    import re

    taken = tmp_path / "taken.txt"
    taken.write_text("a user's file")
    cases = [  # (arguments, what the last line must say)
        (["render", "--case", "chest", "--device", "cuda:99", "--out", tmp_path / "a"],
         r"--device cuda:99: (this torch has no CUDA device|there are \d+ CUDA device)"),
        (["render", "--case", "chest", "--device", "gpu", "--out", tmp_path / "b"], r"use cpu, cuda or cuda:N"),
        (["render", "--case", "chest", "--lao", "720", "--out", tmp_path / "c"], r"720° is outside the C-arm's range"),
        (["reconstruct", "--image", "x.png", "--cranial", "-100", "--out", tmp_path / "d"],
         r"-100° is outside the C-arm's range for cranial"),
        (["render", "--case", "chest", "--detector-size-px", "100000", "100000", "--out", tmp_path / "e"],
         r"a detector side must be 8 to 4096 pixels"),
        (["reconstruct", "--image", "x.png", "--out", taken], r"is a file; give a folder"),
        (["render", "--case", "chest", "--out", tmp_path], r"not an earlier 'xrecon render' output"),
        (["train", "--dataset", tmp_path, "--out", tmp_path / "f", "--threads", "0"], r"0 threads: at least 1"),
    ]
    for args, message in cases:
        result = run_xrecon(*args)
        assert result.returncode == 2 and "Traceback" not in result.stderr, (args, result.stderr)
        assert re.search(message, result.stderr.strip().splitlines()[-1]), (args, result.stderr)
        assert [p.name for p in tmp_path.iterdir()] == ["taken.txt"], "nothing is written"
    assert taken.read_text() == "a user's file"
