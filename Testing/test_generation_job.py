"""The generator subprocess the SyntheticDataGen module runs (``generation_job``) and its command line
(``generation_command``): real ``xrecon generate`` runs followed by polling, cancel and resume.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import HANG_TIMEOUT_S

from SyntheticDataGenLib.errors import XreconInputError
from SyntheticDataGenLib.dataset.generation_command import (
    GenerationOptions,
    as_pair,
    generate_arguments,
    generation_environment,
    module_python_paths,
    python_executable,
)
from SyntheticDataGenLib.dataset.generation_inputs import GenerationInputs, write_generation_inputs
from SyntheticDataGenLib.dataset.generation_job import GenerationJob, Job, parse_progress_line
from SyntheticDataGenLib.cases.label_map import stack_masks
from SyntheticDataGenLib.cases.labels import read_segmentation
from SyntheticDataGenLib.cases.sample_data import sample_case

REPO = Path(__file__).resolve().parents[1]


def small_generation(out: Path, views: int) -> list[str]:
    """A generation that takes seconds: one bone, 32×32 px, no deformation."""
    return [sys.executable, "-m", "SingleImageReconLib.cli", "generate", "--case", "abdomen-pelvis",
            "--structures", "femur_left", "--views", str(views), "--detector-size-px", "32", "32",
            "--pixel-spacing-mm", "12.8", "12.8", "--anatomy", "0", "--shape", "0", "--progress", "lines",
            "--out", str(out)]


def poll_until(job: GenerationJob, stop, timeout_s: float = HANG_TIMEOUT_S) -> list:
    """Poll as the GUI's timer does until ``stop(events so far)``; returns the events."""
    events = []
    deadline = time.monotonic() + timeout_s
    while not stop(events):
        assert time.monotonic() < deadline, f"timed out; log: {list(job.log)}"
        events += job.poll()
        time.sleep(0.05)
    return events


def manifest_ids(out: Path) -> list[str]:
    return [json.loads(line)["id"] for line in (out / "manifest.jsonl").read_text().splitlines() if line.strip()]


def process_group_gone(pid: int) -> bool:
    if os.name == "nt":
        return True  # no process groups to look at; the process itself is checked separately
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


# --- progress lines ------------------------------------------------------------------------
@pytest.mark.parametrize("line, expected", [
    ("progress 3/10", (3, 10)), ("  progress 0 / 4  ", (0, 4)), ("progress 4/4\r", (4, 4)),
    ("progress 1/", None), ("generate: 50%", None), ("my progress 1/2", None), ("", None)])
def test_progress_lines(line, expected):
    assert parse_progress_line(line) == expected


def test_job_runs_a_list_without_a_shell_and_reports_lines(tmp_path):
    """Arguments arrive verbatim (nothing quoted, nothing expanded); progress lines become events."""
    arguments = ["a b", "it's", '"quoted"', "$HOME", "*", "progress 1/2", "progress 2/2"]
    job = GenerationJob([sys.executable, "-c", "import sys; print('\\n'.join(sys.argv[1:]))", *arguments],
                        cwd=str(tmp_path), output_dir=str(tmp_path))
    assert isinstance(job, Job)
    assert job.process.args == job.args  # Popen got the list itself
    events = poll_until(job, lambda events: not job.running)
    assert [event for event in events if event[0] == "log"] == [("log", text) for text in arguments[:5]]
    assert [event for event in events if event[0] == "progress"] == [("progress", 1, 2), ("progress", 2, 2)]
    assert events[-1] == ("exit", 0)
    assert (job.done, job.total, job.return_code, job.cancelled) == (2, 2, 0, False)
    assert list(job.log) == arguments[:5]


def test_wait_times_out_and_kills(tmp_path):
    job = GenerationJob([sys.executable, "-c", "import time; time.sleep(60)"], cwd=str(tmp_path))
    with pytest.raises(TimeoutError):
        job.wait(timeout_s=0.5)
    assert job.wait(timeout_s=30) != 0
    assert job.process.poll() is not None


# --- a real generation ---------------------------------------------------------------------
def test_generation_reports_progress_to_the_end(tmp_path):
    out = tmp_path / "dataset"
    job = GenerationJob(small_generation(out, 4), cwd=str(tmp_path), output_dir=str(out))
    events = poll_until(job, lambda events: not job.running)
    progress = [event[1:] for event in events if event[0] == "progress"]
    assert job.return_code == 0, list(job.log)
    assert progress[0] == (0, 4) and progress[-1] == (4, 4)
    assert progress == sorted(progress)
    assert (job.done, job.total) == (4, 4)
    assert len(manifest_ids(out)) == 4


def test_cancelled_generation_stops_and_resumes_without_duplicates(tmp_path):
    out = tmp_path / "dataset"
    views = 20
    job = GenerationJob(small_generation(out, views), cwd=str(tmp_path), output_dir=str(out))
    poll_until(job, lambda events: any(event[0] == "progress" for event in events) or not job.running)
    assert job.running, list(job.log)
    job.cancel()
    assert job.wait(timeout_s=HANG_TIMEOUT_S) != 0
    assert job.cancelled
    assert job.process.poll() is not None
    assert process_group_gone(job.process.pid)
    assert len(manifest_ids(out)) < views

    rerun = GenerationJob(small_generation(out, views), cwd=str(tmp_path), output_dir=str(out))
    assert rerun.wait(timeout_s=HANG_TIMEOUT_S) == 0, list(rerun.log)
    assert (rerun.done, rerun.total) == (views, views)
    ids = manifest_ids(out)
    assert len(ids) == len(set(ids)) == views


# --- the command line the module builds --------------------------------------------------------
def test_command_is_a_list_of_plain_strings():
    inputs = GenerationInputs("/data/my case/it's.nrrd", "/data/my case/it's-labels.nrrd", '/data/"x".csv')
    options = GenerationOptions(views=7, seed=3, augmentation_preset="none", preset="lateral-left",
                                lao_deg=12.5, cranial_deg=-0.1, detector_size_px=(120, 80), pixel_spacing_mm=0.3,
                                style_strength=0.25, shape_strength=0.0)
    args = generate_arguments("/opt/Slicer/bin/PythonSlicer", inputs, ["femur left", "hip's"], "/out dir/set", options)
    assert all(type(arg) is str for arg in args)
    assert args[:4] == ["/opt/Slicer/bin/PythonSlicer", "-m", "SingleImageReconLib.cli", "generate"]
    value = {args[i]: args[i + 1] for i in range(4, len(args) - 1) if args[i].startswith("--")}
    assert value["--ct"] == "/data/my case/it's.nrrd"
    assert value["--labels-table"] == '/data/"x".csv'
    assert value["--structures"] == "femur left,hip's"
    assert value["--out"] == "/out dir/set"
    assert [value[key] for key in ("--views", "--seed", "--preset", "--geometry")] == ["7", "3", "none", "lateral-left"]
    assert float(value["--lao"]) == 12.5 and float(value["--cranial"]) == -0.1
    size = args.index("--detector-size-px")
    assert args[size + 1:size + 3] == ["120", "80"]
    spacing = args.index("--pixel-spacing-mm")
    assert [float(s) for s in args[spacing + 1:spacing + 3]] == [0.3, 0.3]
    assert [float(value[f"--{group}"]) for group in ("geometric", "physics", "style", "anatomy", "shape")] == [
        1.0, 1.0, 0.25, 1.0, 0.0]
    assert args[-2:] == ["--progress", "lines"]
    # and the generator's own parser reads them back as given
    from SingleImageReconLib.cli import build_parser

    parsed = build_parser().parse_args(args[3:])
    assert (parsed.style, parsed.shape, parsed.geometric) == (0.25, 0.0, 1.0)


def test_the_module_sets_every_generation_option_by_name_from_its_parameter_node():
    """The module's Logic builds GenerationOptions from the parameter node: every option by its
    name (a positional list silently shifts when an option is added), each from a field that
    the parameter node has."""
    import ast
    import dataclasses

    tree = ast.parse((Path(__file__).resolve().parents[1] / "SyntheticDataGen" / "SyntheticDataGen.py").read_text())
    node_class = next(node for node in tree.body if isinstance(node, ast.ClassDef)
                      and node.name == "SyntheticDataGenParameterNode")
    node_fields = {item.target.id for item in node_class.body if isinstance(item, ast.AnnAssign)}
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "GenerationOptions"]
    assert len(calls) == 1 and not calls[0].args
    keywords = {keyword.arg: keyword.value for keyword in calls[0].keywords}
    assert set(keywords) == {field.name for field in dataclasses.fields(GenerationOptions)}
    assert all(isinstance(value, ast.Attribute) and value.attr in node_fields for value in keywords.values())


@pytest.mark.parametrize("structures, options", [
    ([], GenerationOptions()), (["a,b"], GenerationOptions()),
    (["a"], GenerationOptions(augmentation_preset="extreme")), (["a"], GenerationOptions(preset="oblique")),
    (["a"], GenerationOptions(anatomy_strength=-0.5)), (["a"], GenerationOptions(shape_strength=float("nan"))),
    (["a"], GenerationOptions(style_strength=11.0))])
def test_command_refuses_bad_options(structures, options):
    with pytest.raises(XreconInputError):
        generate_arguments("python", GenerationInputs("ct", "labels", "csv"), structures, "out", options)


def test_pairs():
    assert as_pair(256, int) == (256, 256)
    assert as_pair(np.float32(1.5)) == (1.5, 1.5)
    assert as_pair([120.0, 80.0], int) == (120, 80)
    with pytest.raises(XreconInputError):
        as_pair((1, 2, 3))


def test_python_executable(tmp_path):
    assert python_executable("/x/python3", which=lambda name: "/slicer/PythonSlicer") == "/slicer/PythonSlicer"
    launcher = tmp_path / ("PythonSlicer" + (".exe" if os.name == "nt" else ""))
    launcher.write_text("")
    assert python_executable(str(tmp_path / "Slicer"), which=lambda name: None) == str(launcher)
    assert python_executable("/usr/bin/python3.11", which=lambda name: None) == "/usr/bin/python3.11"
    with pytest.raises(RuntimeError):
        python_executable("/opt/Slicer/Slicer", which=lambda name: None)


def test_module_paths_and_environment(tmp_path):
    modules = [str(REPO / "SyntheticDataGen"), str(REPO / "SingleImageRecon")]
    paths = module_python_paths([modules[0], str(tmp_path / "missing"), modules[1], modules[0]])
    assert paths == modules
    with pytest.raises(RuntimeError, match="SingleImageRecon"):
        module_python_paths([modules[0]])
    env = generation_environment(paths, {"PYTHONPATH": "/other", "HOME": "/home/x"})
    assert env["PYTHONPATH"].split(os.pathsep) == [*modules, "/other"]
    assert env["HOME"] == "/home/x" and env["PYTHONUNBUFFERED"] == "1"
    assert generation_environment(paths, {})["PYTHONPATH"] == os.pathsep.join(modules)


def test_module_path_runs_the_generator(tmp_path):
    """What the module's startGeneration does, without Slicer: export, build the command, run it."""
    case = sample_case("abdomen-pelvis")
    ct = sitk.ReadImage(str(case.ct_path))
    names = ["femur_left", "hip_left"]
    segmentation = read_segmentation(case.labels_path, case.table_path, reference=ct)
    labels, _ = stack_masks((segmentation.mask_array(name) for name in names), segmentation.mask_array(names[0]).shape,
                            len(names))
    label_image = sitk.GetImageFromArray(labels)
    label_image.CopyInformation(ct)
    out = tmp_path / "out dir" / "it's"
    inputs = write_generation_inputs(ct, label_image, names, out / "inputs", "case 1")  # stem from a node name
    options = GenerationOptions(views=2, augmentation_preset="none", detector_size_px=32, pixel_spacing_mm=12.8)
    args = generate_arguments(python_executable(), inputs, names, str(out), options)
    env = generation_environment(module_python_paths([REPO / "SyntheticDataGen", REPO / "SingleImageRecon"]))
    job = GenerationJob(args, env=env, cwd=str(out), output_dir=str(out))
    assert job.wait(timeout_s=HANG_TIMEOUT_S) == 0, list(job.log)
    assert (job.done, job.total) == (2, 2)
    header = json.loads((out / "dataset.json").read_text())
    assert header["settings"]["structures"] == names
    assert header["cases"][0]["ct_path"] == inputs.ct_path
    assert len(manifest_ids(out)) == 2
