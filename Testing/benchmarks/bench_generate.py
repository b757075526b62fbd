"""Dataset generation throughput: samples per minute with the heavy preset, without and with anatomy.

    xrecon bench generate [--case abdomen-pelvis] [--views 24] [--size 256] [--threads 2]

Each configuration renders into a fresh temporary folder and is timed from start to the last
file written (reading and preparing the case included; a one-sample warm-up run first takes the
process's one-time costs). The last lines give each rate against
the issue's aims (100 samples/min without anatomy deformation, 20 with), measured in this run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from SyntheticDataGenLib.augmentation import PRESETS
from SyntheticDataGenLib.generation import BaseView, CaseSource, GenerationSettings, generate_dataset
from SyntheticDataGenLib.sample_data import sample_case

DEFAULT_STRUCTURES = "femur_left,femur_right,hip_left,hip_right,sacrum,vertebrae_L1,vertebrae_L2,vertebrae_L3,vertebrae_L4,vertebrae_L5"
AIMS = {"heavy, no anatomy": 100.0, "heavy with anatomy": 20.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xrecon bench generate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", default="abdomen-pelvis")
    parser.add_argument("--structures", default=DEFAULT_STRUCTURES)
    parser.add_argument("--views", type=int, default=24, help="samples per configuration")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    files = sample_case(args.case)
    source = CaseSource(args.case, files.ct_path, files.labels_path, files.table_path, "train")
    base = BaseView(size_px=(args.size, args.size), pixel_spacing_mm=(1.6 * 256 / args.size,) * 2)
    structures = args.structures.split(",")
    with tempfile.TemporaryDirectory() as folder:  # warm-up: imports and first-call costs, not timed
        generate_dataset(Path(folder) / "warm-up", [source], GenerationSettings(structures, 1, 0, base))
    rates = {}
    for name, anatomy in (("heavy, no anatomy", 0.0), ("heavy with anatomy", 1.0)):
        settings = GenerationSettings(structures, args.views, 0, base, PRESETS["heavy"].scaled(anatomy=anatomy), "heavy")
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            written = generate_dataset(Path(folder) / "dataset", [source], settings)
            seconds = time.perf_counter() - start
        rates[name] = 60.0 * written / seconds
        print(f"{name}: {written} samples of {args.size}² with {len(structures)} structures in {seconds:.1f} s "
              f"= {rates[name]:.0f} samples/min ({args.threads} threads, views per anatomy "
              f"{settings.views_per_anatomy})")
    for name, rate in rates.items():
        print(f"{name}: {rate / AIMS[name]:.2f}x the aim of {AIMS[name]:.0f} samples/min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
