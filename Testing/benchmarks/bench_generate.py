"""Dataset generation throughput: samples per minute with the heavy preset, without and with anatomy.

    xrecon bench generate [--case abdomen-pelvis] [--views 24] [--size 256] [--threads 2] [--sheet PNG]

Each configuration renders into a fresh temporary folder and is timed from start to the last
file written (reading and preparing the case included; a one-sample warm-up run first takes the
process's one-time costs). Three configurations: no anatomy, the preset's anatomy (random and
towards-case deformations), and shape-model anatomy on every anatomy group (bones given new
shapes from the bundled shape models). The shape models' one-time registration onto the case's
bones is timed apart; the dataset keeps it, so later runs skip it. The last lines give each rate
against the issue's aims (100 samples/min without anatomy deformation, 20 with) and against the
no-anatomy rate, measured in this run.

``--sheet PNG`` also draws the case's AP view before and after several shape-model anatomies,
each new bone outline over the original one, to see that deformed patients look like patients.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from SingleImageReconLib.shape_models.model_files import load_models
from SingleImageReconLib.shape_models.shape_sampling import ShapeModelSampler
from SyntheticDataGenLib.augmentation.ladder import PRESETS, sample_augmentation
from SyntheticDataGenLib.dataset.generation import (BaseView, CaseLoader, CaseSource, GenerationSettings, generate_dataset,
                                            radiograph, sample_geometry)
from SyntheticDataGenLib.cases.sample_data import sample_case
from SyntheticDataGenLib.projection.view import render_view

DEFAULT_STRUCTURES = "femur_left,femur_right,hip_left,hip_right,sacrum,vertebrae_L1,vertebrae_L2,vertebrae_L3,vertebrae_L4,vertebrae_L5"
AIMS = {"heavy, no anatomy": 100.0, "heavy with anatomy": 20.0, "heavy with shape-model anatomy": 20.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xrecon bench generate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", default="abdomen-pelvis")
    parser.add_argument("--structures", default=DEFAULT_STRUCTURES)
    parser.add_argument("--views", type=int, default=24, help="samples per configuration")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sheet", type=Path, metavar="PNG", help="also draw shape-model anatomies of the case")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    files = sample_case(args.case)
    source = CaseSource(args.case, files.ct_path, files.labels_path, files.table_path, "train")
    base = BaseView(size_px=(args.size, args.size), pixel_spacing_mm=(1.6 * 256 / args.size,) * 2)
    structures = args.structures.split(",")
    rates = {}
    with tempfile.TemporaryDirectory() as folder:
        generate_dataset(Path(folder) / "warm-up", [source], GenerationSettings(structures, 1, 0, base))  # untimed
        sampler = ShapeModelSampler(load_models(), Path(folder) / "shape_correspondences")
        start = time.perf_counter()
        raw = CaseLoader(structures).raw(source)
        bones = sampler.bones(source.name, raw.segmentation, raw.names)
        print(f"shape models registered onto {len(bones)} whole bones of {args.case} in "
              f"{time.perf_counter() - start:.1f} s (once per case; the dataset keeps them)")
        configurations = (("heavy, no anatomy", dict(anatomy=0.0, shape=0.0), None),
                          ("heavy with anatomy", dict(anatomy=1.0, shape=0.0), None),
                          ("heavy with shape-model anatomy", dict(anatomy=0.0, shape=2.0), sampler))
        for name, strengths, shapes in configurations:
            settings = GenerationSettings(structures, args.views, 0, base, PRESETS["heavy"].scaled(**strengths), "heavy")
            start = time.perf_counter()
            written = generate_dataset(Path(folder) / name, [source], settings, shape_sampler=shapes)
            seconds = time.perf_counter() - start
            rates[name] = 60.0 * written / seconds
            print(f"{name}: {written} samples of {args.size}² with {len(structures)} structures in {seconds:.1f} s "
                  f"= {rates[name]:.0f} samples/min ({args.threads} threads, views per anatomy "
                  f"{settings.views_per_anatomy})")
        if args.sheet:
            shape_anatomy_sheet(source, structures, sampler, base, args.sheet)
            print(f"wrote {args.sheet}")
    reference = rates["heavy, no anatomy"]
    for name, rate in rates.items():
        print(f"{name}: {rate / AIMS[name]:.2f}x the aim of {AIMS[name]:.0f} samples/min; "
              f"{rate / reference:.2f}x the rate without anatomy")
    return 0


def shape_anatomy_sheet(source: CaseSource, structures: list[str], sampler: ShapeModelSampler, base: BaseView,
                        path: Path, count: int = 5, shape_sd: float = 1.0) -> None:
    """The case's AP view as scanned and with ``count`` shape-model anatomies of ``shape_sd``:
    the new bone outlines in colour over the scanned ones in white."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loader = CaseLoader(structures, cases=[source], shape_sampler=sampler)
    draw = sample_augmentation(PRESETS["none"], np.random.default_rng(0))

    def rendered(anatomy):
        prepared = loader.prepare(source, anatomy)
        view = render_view(prepared.volume, sample_geometry(base, prepared.isocenter_ras_mm, draw))
        masks = {name: view.masks[index].cpu().numpy() for index, name in enumerate(view.names)}
        return radiograph(view.line_integral, draw)[0].cpu().numpy(), masks, prepared.applied

    plain = {"deformation_mm": 0.0, "towards_case": None, "towards_fraction": 0.0, "seed": 0, "shape_sd": 0.0}
    scanned, scanned_masks, _ = rendered(plain)
    columns = 3
    lines = -(-(count + 1) // columns)
    figure, axes = plt.subplots(lines, columns, figsize=(5.0 * columns, 5.2 * lines), squeeze=False)
    colours = plt.get_cmap("tab10")(np.arange(len(structures)) % 10)
    for axis in axes.ravel():
        axis.axis("off")
    for axis, seed in zip(axes.ravel(), range(-1, count)):
        image, masks, applied = (scanned, scanned_masks, {}) if seed < 0 else rendered({**plain, "seed": seed,
                                                                                          "shape_sd": shape_sd})
        axis.imshow(image, cmap="gray", vmin=0, vmax=1)
        for colour, name in zip(colours, structures):
            if name in scanned_masks and seed >= 0:
                axis.contour(scanned_masks[name], levels=[0.5], colors=["white"], linewidths=0.6)
            if name in masks:
                axis.contour(masks[name], levels=[0.5], colors=[colour], linewidths=0.9)
        kept = f", {applied['shape_scale']:.0%} kept" if applied.get("shape_scale", 1.0) < 1 else ""
        axis.set_title("as scanned" if seed < 0 else f"new shapes, seed {seed}{kept}", fontsize=10)
    figure.suptitle(f"{source.name}: shape-model anatomy at {shape_sd:g} model SD (white: the scanned bones)")
    figure.tight_layout(rect=(0, 0, 1, 0.97), h_pad=2.0)
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    sys.exit(main())
