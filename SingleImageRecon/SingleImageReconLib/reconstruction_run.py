"""One reconstruction as the SingleImageRecon module runs it, without blocking Slicer.

The module writes the radiograph (and the reference labels) to files, starts the ``xrecon``
commands of :func:`run_commands` one after the other in a subprocess (:class:`CommandChain`,
followed from a timer like ``xrecon generate``), and reads what they wrote back with
:func:`read_run`. Qt-free and Slicer-free: pytest runs all of it.

A run folder holds ``reconstruction/`` (``xrecon reconstruct --out``), and where reference labels
were given ``metrics.json`` and ``measured/`` (``xrecon evaluate``: each surface with its signed
distance ``distance_mm`` to the reference, and the reference surface measured against). A demo
run (:func:`demo_commands`) holds ``demo/``, what ``xrecon demo`` writes, ``scene.mrb`` included.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from SyntheticDataGenLib.dataset.generation_job import GenerationJob, Job, JobEvent
from SyntheticDataGenLib.errors import XreconInputError

#: The reconstruction methods of ``xrecon reconstruct --method``.
METHODS = ("depth", "ssm", "combined")

#: Which subcommand each stage of a run is, in order, for progress text.
STAGE_NAMES = {"reconstruct": "Reconstructing", "evaluate": "Measuring against the reference",
               "demo": "Running the demo"}


@dataclass(frozen=True)
class RunOptions:
    """What the GUI chooses for ``xrecon reconstruct``.

    ``bundle_dir`` / ``landmark_bundle_dir`` empty mean the bundled models; ``spacing_mm`` is the
    surface extraction grid (mm); ``device`` a torch device ("cpu", "cuda"); ``structures``
    empty means every structure the model knows.
    """

    method: str = "depth"
    bundle_dir: str = ""
    landmark_bundle_dir: str = ""
    device: str = "cpu"
    spacing_mm: float = 1.5
    presence_threshold: float = 0.5
    structures: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunInputs:
    """Files of one run. ``geometry`` is a geometry JSON path, a preset name, or empty for the
    geometry the image file carries (DICOM tags); ``pixel_spacing_mm`` (su, sv) goes with a preset.
    A demo run has the reference CT (``ct_path``) and labels instead of a radiograph."""

    radiograph_path: str = ""
    geometry: str = ""
    pixel_spacing_mm: tuple[float, float] | None = None
    labels_path: str = ""
    labels_table_path: str = ""
    ct_path: str = ""


def run_commands(python: str, inputs: RunInputs, run_dir: str | os.PathLike, options: RunOptions = RunOptions()
                 ) -> list[list[str]]:
    """The ``python -m SingleImageReconLib.cli ...`` commands of one run, as lists (no shell).

    ``reconstruct`` always; ``evaluate`` when ``inputs.labels_path`` is set. Numbers are written
    with ``repr`` so the commands get exactly the GUI's values. Raises XreconInputError on an
    unknown method.
    """
    if options.method not in METHODS:
        raise XreconInputError(f"unknown method {options.method!r}; choose one of {', '.join(METHODS)}")
    run_dir = Path(run_dir)
    cli = [str(python), "-m", "SingleImageReconLib.cli"]
    reconstruct = [*cli, "reconstruct", "--image", str(inputs.radiograph_path)]
    if inputs.geometry:
        reconstruct += ["--geometry", str(inputs.geometry)]
    if inputs.pixel_spacing_mm is not None:
        reconstruct += ["--pixel-spacing-mm", *(repr(float(s)) for s in inputs.pixel_spacing_mm)]
    reconstruct += ["--method", options.method, "--spacing-mm", repr(float(options.spacing_mm)),
                    "--presence-threshold", repr(float(options.presence_threshold)),
                    "--device", options.device, "--progress", "lines", "--out", str(run_dir / "reconstruction")]
    if options.bundle_dir:
        reconstruct += ["--bundle", str(options.bundle_dir)]
    if options.landmark_bundle_dir:
        reconstruct += ["--landmark-bundle", str(options.landmark_bundle_dir)]
    if options.structures:
        reconstruct += ["--structures", ",".join(options.structures)]
    commands = [reconstruct]
    if inputs.labels_path:
        evaluate = [*cli, "evaluate", "--recon", str(run_dir / "reconstruction"), "--labels", str(inputs.labels_path),
                    "--models", str(run_dir / "measured"), "--progress", "lines", "--out", str(run_dir / "metrics.json")]
        if inputs.labels_table_path:
            evaluate[-2:-2] = ["--labels-table", str(inputs.labels_table_path)]
        commands.append(evaluate)
    return commands


def demo_commands(python: str, inputs: RunInputs, run_dir: str | os.PathLike, options: RunOptions = RunOptions()
                  ) -> list[list[str]]:
    """``xrecon demo`` on the run's reference CT and labels, writing ``RUN/demo/``: the commands
    as lists (no shell). ``options.method`` does not apply: the demo runs every method it can."""
    if not (inputs.ct_path and inputs.labels_path):
        raise XreconInputError("the demo needs a reference CT and its segmentation")
    demo = [str(python), "-m", "SingleImageReconLib.cli", "demo", "--ct", str(inputs.ct_path),
            "--labels", str(inputs.labels_path)]
    if inputs.labels_table_path:
        demo += ["--labels-table", str(inputs.labels_table_path)]
    if options.bundle_dir:
        demo += ["--bundle", str(options.bundle_dir)]
    return [demo + ["--spacing-mm", repr(float(options.spacing_mm)), "--device", options.device,
                    "--out", str(Path(run_dir) / "demo")]]


class CommandChain:
    """Commands run one after another, seen as one :class:`~SyntheticDataGenLib.dataset.generation_job.Job`.

    The next command starts when the previous one exits with 0; the chain ends at the first
    non-zero exit, after the last command, or on :meth:`cancel`. ``done``/``total`` are those of
    the running command (structures); :attr:`stage` says which one it is. ``start_job`` makes a
    job of one command (a stand-in in tests).
    """

    def __init__(self, commands: Sequence[Sequence[str]], env=None, cwd: str | None = None,
                 output_dir: str | None = None,
                 start_job: Callable[..., Job] = GenerationJob):
        if not commands:
            raise ValueError("a command chain needs at least one command")
        self.commands = [[str(arg) for arg in command] for command in commands]
        self.output_dir = output_dir
        self.return_code: int | None = None
        self.cancelled = False
        self.log: collections.deque = collections.deque(maxlen=500)
        self._start = lambda command: start_job(command, env=env, cwd=cwd, output_dir=output_dir)
        self._index = 0
        self._job = self._start(self.commands[0])

    @property
    def args(self) -> list[str]:
        return self._job.args

    @property
    def stage(self) -> str:
        """The running command's subcommand ("reconstruct", "evaluate")."""
        return self.commands[self._index][3] if len(self.commands[self._index]) > 3 else ""

    @property
    def done(self) -> int:
        return self._job.done

    @property
    def total(self) -> int | None:
        return self._job.total

    @property
    def running(self) -> bool:
        return self.return_code is None

    def poll(self) -> list[JobEvent]:
        """The running command's events; its "exit" only when the whole chain ends."""
        events = []
        for event in self._job.poll():
            if event[0] == "log":
                self.log.append(event[1])
            if event[0] != "exit":
                events.append(event)
                continue
            code = event[1]
            if code == 0 and not self.cancelled and self._index + 1 < len(self.commands):
                self._index += 1
                self._job = self._start(self.commands[self._index])
                events.append(("log", f"{STAGE_NAMES.get(self.stage, self.stage)}..."))
            else:
                self.return_code = code
                events.append(("exit", code))
        return events

    def cancel(self, force: bool = False) -> None:
        self.cancelled = True
        self._job.cancel(force)


@dataclass
class RunResult:
    """What a run wrote, read back (surfaces in RAS mm).

    ``surfaces``: structure -> surface, the measured copy (point array ``distance_mm``) where the
    run was evaluated; ``truth``: the reference surfaces measured against; ``not_found``:
    structure -> its best presence probability; ``metrics``: structure -> metrics and ``mean``
    (means over structures) from ``metrics.json``; ``landmarks``: the fitted 3D landmarks and,
    per view, the network's 2D landmarks on the detector plane (labels, points [n, 3]), where the
    method has them.
    """

    method: str
    geometries: list
    surfaces: dict = field(default_factory=dict)
    truth: dict = field(default_factory=dict)
    not_found: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    mean: dict = field(default_factory=dict)
    fitted_landmarks: tuple[list[str], np.ndarray] | None = None
    view_landmarks: list = field(default_factory=list)


def read_run(run_dir: str | os.PathLike) -> RunResult:
    """Read a run folder (see the module docstring) back; XreconInputError when it is not one."""
    from SyntheticDataGenLib.atomic_io import read_json
    from SyntheticDataGenLib.cases.landmarks import read_markups_json
    from SyntheticDataGenLib.projection.geometry import ProjectionGeometry

    from .commands.evaluate import read_reconstruction
    from .commands.view_files import file_stem
    from .meshes.mesh_io import read_model

    run_dir = Path(run_dir)
    summary, surfaces = read_reconstruction(run_dir / "reconstruction")
    result = RunResult(method=str(summary.get("method", "depth")),
                       geometries=[ProjectionGeometry.from_dict(view["geometry"]) for view in summary.get("views", [])],
                       surfaces=surfaces)
    for name, entry in summary.get("structures", {}).items():
        if not entry.get("found"):
            result.not_found[name] = max(entry.get("presence") or [0.0])
    if (run_dir / "metrics.json").is_file():
        document = read_json(run_dir / "metrics.json", f"{run_dir / 'metrics.json'} is not a metrics file")
        methods = document.get("methods", {})
        measured = methods.get(result.method) or next(iter(methods.values()), {})
        result.metrics = dict(measured.get("structures", {}))
        result.mean = dict(measured.get("mean", {}))
        for name in result.metrics:
            measured_file = run_dir / "measured" / f"{file_stem(name)}.vtk"
            truth_file = run_dir / "measured" / f"{file_stem(name)}_truth.vtk"
            if measured_file.is_file():
                result.surfaces[name] = read_model(measured_file)
            if truth_file.is_file():
                result.truth[name] = read_model(truth_file)
    fitted = run_dir / "reconstruction" / "landmarks.mrk.json"
    if fitted.is_file():
        result.fitted_landmarks = read_markups_json(fitted)
    for view in summary.get("views", []):
        markups = run_dir / "reconstruction" / view.get("folder", "") / "landmarks.mrk.json"
        result.view_landmarks.append(read_markups_json(markups) if view.get("folder") and markups.is_file() else None)
    return result


#: The point lists ``xrecon demo`` writes: file name -> node name.
DEMO_LANDMARK_FILES = {"landmarks_ct.mrk.json": "CT structure centres",
                       "landmarks_reconstructed.mrk.json": "Reconstructed structure centres (AP)",
                       "landmarks_ssm.mrk.json": "Shape-model landmarks (AP)"}


def read_demo(demo_dir: str | os.PathLike, prefix: str = "") -> dict:
    """What ``xrecon demo`` wrote into ``demo_dir``, as content for ``scene.add_qa_nodes``: the
    radiographs on their detectors, every method's models ("METHOD STRUCTURE", with their
    ``distance_mm``, tagged with method and structure), the metrics rows and the point lists
    (RAS mm). Node names start with ``prefix``. XreconInputError when it is not a demo folder."""
    from SyntheticDataGenLib.atomic_io import read_json
    from SyntheticDataGenLib.cases.landmarks import read_markups_json
    from SyntheticDataGenLib.projection.geometry import ProjectionGeometry

    from .commands.view_files import file_stem
    from .meshes.mesh_io import read_model
    from .radiographs.radiograph_io import read_radiograph

    demo_dir = Path(demo_dir)
    document = read_json(demo_dir / "metrics.json", f"{demo_dir} holds no demo (no metrics.json)")
    radiographs = []
    while (demo_dir / f"geometry_view{len(radiographs) + 1}.json").is_file():
        index = len(radiographs) + 1
        image = read_radiograph(demo_dir / f"radiograph_view{index}.nrrd").image
        radiographs.append((f"{prefix}Radiograph view {index}", image,
                            ProjectionGeometry.load(demo_dir / f"geometry_view{index}.json")))
    models, methods, rows = {}, {}, []
    for method, entry in document.get("methods", {}).items():
        for structure, metrics in entry.get("structures", {}).items():
            name = f"{prefix}{method} {structure}"
            models[name] = read_model(demo_dir / method / f"{file_stem(structure)}.vtk")
            methods[name] = (method, structure)
            rows.append({"method": method, "structure": structure, **metrics})
    landmarks = {f"{prefix}{name}": read_markups_json(demo_dir / file)
                 for file, name in DEMO_LANDMARK_FILES.items() if (demo_dir / file).is_file()}
    return {"radiographs": radiographs, "models": models, "model_methods": methods, "metrics_rows": rows,
            "landmarks": landmarks}


def new_run_folder(base: str | os.PathLike, name: str) -> Path:
    """A new, empty folder for a run named ``name`` under ``base``: the name made safe for any file
    system, then " 2", " 3", ... until it is new."""
    stem = "".join(c if c.isalnum() or c in " ._-" else "_" for c in name).strip(" .") or "run"
    path, count = Path(base) / stem, 1
    while path.exists():
        count += 1
        path = Path(base) / f"{stem} {count}"
    path.mkdir(parents=True)
    return path


def run_summary(name: str, result: RunResult) -> str:
    """One line about a finished run: surfaces, the structures not found, the mean ASSD (mm)."""
    text = f"'{name}': {len(result.surfaces)} surface{'s' if len(result.surfaces) != 1 else ''}."
    if result.not_found:
        text += f" Not found: {', '.join(result.not_found)}."
    if result.mean.get("assd_mm") is not None:
        text += f" Mean ASSD {result.mean['assd_mm']:.1f} mm over {len(result.metrics)} measured."
    return text
