"""A reconstruction run as the SingleImageRecon module makes it: the commands, the chain that runs
them without blocking, the files read back, and the scene folder built from them (slicer-core).
"""

from __future__ import annotations

import collections
import json
import sys

import pytest

from conftest import run_xrecon
from SingleImageReconLib.reconstruction_run import (CommandChain, RunInputs, RunOptions, RunResult, new_run_folder,
                                                    read_run, run_commands, run_summary)
from SyntheticDataGenLib.cases.sample_data import sample_case
from SyntheticDataGenLib.errors import XreconInputError

STRUCTURES = ("vertebrae_L3", "femur_left")


# --- commands ---------------------------------------------------------------------------------
def test_commands_reconstruct_then_evaluate_with_the_guis_values(tmp_path):
    inputs = RunInputs("/data/my radiograph.nrrd", "/data/geometry 'x'.json", labels_path="/data/l.nrrd",
                       labels_table_path="/data/l.csv")
    options = RunOptions(method="combined", bundle_dir="/models/b", device="cuda", spacing_mm=1.25,
                         presence_threshold=0.4, structures=STRUCTURES)
    reconstruct, evaluate = run_commands("/py", inputs, tmp_path / "run 1", options)
    assert reconstruct[:4] == ["/py", "-m", "SingleImageReconLib.cli", "reconstruct"]
    flags = dict(zip(reconstruct[4::2], reconstruct[5::2]))
    assert flags["--image"] == "/data/my radiograph.nrrd" and flags["--geometry"] == "/data/geometry 'x'.json"
    assert flags["--method"] == "combined" and flags["--device"] == "cuda" and flags["--bundle"] == "/models/b"
    assert float(flags["--spacing-mm"]) == 1.25 and float(flags["--presence-threshold"]) == 0.4
    assert flags["--structures"] == "vertebrae_L3,femur_left" and flags["--progress"] == "lines"
    assert flags["--out"] == str(tmp_path / "run 1" / "reconstruction")
    assert evaluate[3] == "evaluate"
    flags = dict(zip(evaluate[4::2], evaluate[5::2]))
    assert flags == {"--recon": str(tmp_path / "run 1" / "reconstruction"), "--labels": "/data/l.nrrd",
                     "--labels-table": "/data/l.csv", "--models": str(tmp_path / "run 1" / "measured"),
                     "--progress": "lines", "--out": str(tmp_path / "run 1" / "metrics.json")}


def test_commands_take_a_preset_with_pixel_spacing_or_the_files_own_geometry(tmp_path):
    (preset,) = run_commands("/py", RunInputs("/x.png", "ap", pixel_spacing_mm=(0.2, 0.3)), tmp_path)
    at = preset.index("--pixel-spacing-mm")
    assert preset[at + 1:at + 3] == ["0.2", "0.3"] and preset[preset.index("--geometry") + 1] == "ap"
    (dicom,) = run_commands("/py", RunInputs("/x.dcm"), tmp_path)
    assert "--geometry" not in dicom
    with pytest.raises(XreconInputError, match="unknown method"):
        run_commands("/py", RunInputs("/x.dcm"), tmp_path, RunOptions(method="magic"))


def test_run_folders_are_new_and_safe_and_the_summary_says_what_was_missed(tmp_path):
    first = new_run_folder(tmp_path, "DRR: L3/L4 depth")
    second = new_run_folder(tmp_path, "DRR: L3/L4 depth")
    assert first.name == "DRR_ L3_L4 depth" and second.name == "DRR_ L3_L4 depth 2" and second.is_dir()
    result = RunResult("depth", [], surfaces={"femur_left": None}, not_found={"sacrum": 0.1},
                       metrics={"femur_left": {}}, mean={"assd_mm": 3.25})
    assert run_summary("R", result) == "'R': 1 surface. Not found: sacrum. Mean ASSD 3.2 mm over 1 measured."


def test_missing_inputs_and_preset_geometry_of_a_radiograph_node():
    pytest.importorskip("slicer")
    import numpy as np

    from SingleImageReconLib import run_scene, scene as mrml
    from SyntheticDataGenLib.projection.geometry import preset_geometry

    scene = mrml.new_scene()
    try:
        geometry = preset_geometry("ap", size_px=(40, 30), pixel_spacing_mm=(2.0, 2.0))
        node = mrml.add_radiograph(scene, "R", np.zeros((30, 40), np.float32), geometry)
        assert run_scene.missing_inputs(None, "radiograph").startswith("Select a radiograph")
        assert run_scene.missing_inputs(node, "radiograph") == ""
        assert "geometry file" in run_scene.missing_inputs(node, "file")
        assert "DICOM" in run_scene.missing_inputs(node, "dicom")
        node.RemoveAttribute(mrml.GEOMETRY_ATTRIBUTE)
        assert "carries no geometry" in run_scene.missing_inputs(node, "radiograph")
        assert run_scene.missing_inputs(node, "preset") == ""
        preset = run_scene.radiograph_geometry(node, "preset", preset="lateral-left", pixel_spacing_mm=0.5)
        assert preset == preset_geometry("lateral-left", size_px=(40, 30), pixel_spacing_mm=(0.5, 0.5))
    finally:
        mrml.close_scene(scene)


# --- the chain, with stand-in jobs ------------------------------------------------------------
class FakeJob:
    """A job that replays scripted events; records what it was asked."""

    scripts: collections.deque = collections.deque()
    started: list = []

    def __init__(self, args, env=None, cwd=None, output_dir=None):
        self.args, self.output_dir = list(args), output_dir
        self.events = list(FakeJob.scripts.popleft())
        self.done, self.total, self.return_code, self.cancelled = 0, None, None, False
        self.log = collections.deque()
        FakeJob.started.append(self)

    @property
    def running(self):
        return self.return_code is None

    def poll(self):
        events, self.events = self.events, []
        for event in events:
            if event[0] == "progress":
                self.done, self.total = event[1], event[2]
            if event[0] == "exit":
                self.return_code = event[1]
        return events

    def cancel(self, force=False):
        self.cancelled = True


@pytest.fixture
def fake_jobs():
    FakeJob.scripts.clear()
    FakeJob.started.clear()
    return FakeJob


def test_chain_starts_the_next_command_only_after_a_clean_exit(fake_jobs):
    fake_jobs.scripts.extend([[("progress", 1, 2), ("log", "hello"), ("exit", 0)], [("progress", 2, 3), ("exit", 0)]])
    chain = CommandChain([["py", "-m", "cli", "reconstruct"], ["py", "-m", "cli", "evaluate"]], start_job=fake_jobs)
    first = chain.poll()
    assert ("progress", 1, 2) in first and ("exit", 0) not in first and chain.running
    assert chain.stage == "evaluate" and len(fake_jobs.started) == 2
    assert chain.poll() == [("progress", 2, 3), ("exit", 0)]
    assert not chain.running and chain.return_code == 0 and (chain.done, chain.total) == (2, 3)
    assert list(chain.log)[0] == "hello"


def test_chain_stops_at_a_failure_and_on_cancel(fake_jobs):
    fake_jobs.scripts.extend([[("log", "error: bad image"), ("exit", 2)]])
    chain = CommandChain([["py", "-m", "cli", "reconstruct"], ["py", "-m", "cli", "evaluate"]], start_job=fake_jobs)
    assert chain.poll()[-1] == ("exit", 2) and chain.return_code == 2 and len(fake_jobs.started) == 1
    fake_jobs.scripts.extend([[]])
    chain = CommandChain([["py", "-m", "cli", "reconstruct"], ["py", "-m", "cli", "evaluate"]], start_job=fake_jobs)
    chain.cancel()
    assert fake_jobs.started[-1].cancelled and chain.cancelled
    fake_jobs.started[-1].events = [("exit", 0)]  # it had finished anyway: nothing more starts
    assert chain.poll() == [("exit", 0)] and len(fake_jobs.started) == 2
    with pytest.raises(ValueError):
        CommandChain([], start_job=fake_jobs)


# --- end to end: real commands, read back, into a slicer-core scene -------------------------
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """render -> reconstruct -> evaluate of the sample case, through the chain the module uses."""
    root = tmp_path_factory.mktemp("run")
    render = run_xrecon("render", "--case", "abdomen-pelvis", "--structures", ",".join(STRUCTURES), "--out", root / "R")
    assert render.returncode == 0, render.stderr
    case = sample_case("abdomen-pelvis")
    inputs = RunInputs(str(root / "R" / "drr.nrrd"), str(root / "R" / "geometry.json"),
                       labels_path=str(case.labels_path), labels_table_path=str(case.table_path))
    commands = run_commands(sys.executable, inputs, root / "run", RunOptions(structures=STRUCTURES))
    chain = CommandChain(commands, output_dir=str(root / "run"))
    progress = []
    deadline = 3600
    import time

    start = time.monotonic()
    while chain.running and time.monotonic() - start < deadline:
        progress += [event for event in chain.poll() if event[0] == "progress"]
        time.sleep(0.2)
    assert chain.return_code == 0, "\n".join(chain.log)
    return root, progress


@pytest.mark.slow
def test_run_reports_progress_over_structures_and_reads_back(finished_run):
    root, progress = finished_run
    assert progress[0] == ("progress", 0, len(STRUCTURES)) and ("progress", len(STRUCTURES), len(STRUCTURES)) in progress
    result = read_run(root / "run")
    assert result.method == "depth" and len(result.geometries) == 1
    assert set(result.surfaces) | set(result.not_found) == set(STRUCTURES)
    metrics = json.loads((root / "run" / "metrics.json").read_text())["methods"]["depth"]
    assert set(result.metrics) == set(metrics["structures"]) == set(result.truth)
    for name, surface in result.surfaces.items():
        distance = surface.GetPointData().GetArray("distance_mm")
        assert distance is not None, name
    with pytest.raises(XreconInputError):
        read_run(root / "R")  # a render folder is not a run


@pytest.mark.slow
def test_apply_self_test_body_in_a_slicer_core_scene(tmp_path):
    """The module's Apply self-test body, in a slicer-core scene; and its checks fail on a broken folder."""
    pytest.importorskip("slicer")
    from SingleImageReconLib import scene as mrml
    from SingleImageReconLib import self_test
    from SingleImageReconLib.commands.reconstruct import default_bundle_dir
    from SingleImageReconLib.networks.bundle_format import read_bundle_metadata

    scene = mrml.new_scene()
    try:
        run_dir = tmp_path / "run 1"
        nodes = self_test.reconstruction_run_checks(scene, sys.executable, None, run_dir,
                                                    read_bundle_metadata(default_bundle_dir()))
        result = read_run(run_dir)
        reference = nodes["metrics"].GetNodeReference("xrecon.reference")
        geometry = result.geometries[0]
        model = next(iter(nodes["models"].values()))
        model.GetPolyData().GetPointData().RemoveArray("distance_mm")
        with pytest.raises(AssertionError, match="distance_mm"):
            self_test._check_run_nodes(scene, nodes, result, geometry, reference)
        scene.GetSubjectHierarchyNode().CreateItem(nodes["folder"], mrml.add_metrics_table(scene, "stray", [{"a": 1}]))
        with pytest.raises(AssertionError, match="the run folder holds"):
            self_test._check_run_nodes(scene, nodes, result, geometry, reference)
    finally:
        mrml.close_scene(scene)
