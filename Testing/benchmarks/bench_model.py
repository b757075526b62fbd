"""Depth model benchmark: accuracy on datasets and inference time, measured in one run.

    xrecon bench model --bundle Resources/Models/xrecon-depth-ap256 --dataset DIR[:SPLIT] [--dataset ...]

For each dataset (and split: train, validation or all) it prints, per structure and pooled, mask
Dice, the median absolute front and back depth error (mm, on pixels of the true mask) and the
precision and recall of the presence decision (in the image = at least 16 mask pixels); then
the inference time per image at batch 1 and batch 8, and its ratio to the 100 ms aim.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from SingleImageReconLib.networks.depth_bundle import load_bundle
from SingleImageReconLib.networks.depth_training import evaluate
from SyntheticDataGenLib.dataset.torch_dataset import SyntheticXrayDataset

AIM_MS = 100.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xrecon bench model", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--dataset", action="append", default=[], metavar="DIR[:SPLIT]")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, metadata = load_bundle(args.bundle, args.device)
    structures = metadata["xrecon"]["structures"]
    for spec in args.dataset:
        folder, _, split = spec.partition(":")
        dataset = SyntheticXrayDataset(folder, None if split in ("", "all") else split)
        if dataset.structures != structures:
            print(f"{spec}: structures differ from the bundle's; skipped")
            continue
        results = evaluate(model, dataset, torch.device(args.device))
        print(f"{spec}: {len(dataset)} images")
        for name, figures in results.items():
            print(f"  {name:14s} Dice {figures.get('dice', float('nan')):.3f}  "
                  f"front {figures.get('front_median_abs_error_mm', float('nan')):6.2f} mm  "
                  f"back {figures.get('back_median_abs_error_mm', float('nan')):6.2f} mm  "
                  f"presence precision {figures['presence_precision']:.3f} recall {figures['presence_recall']:.3f}"
                  + (f"  ({figures['views_present']} views show it)" if "views_present" in figures else ""))
    height, width = metadata["network_data_format"]["inputs"]["image"]["spatial_shape"]
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    timings = {}
    with torch.no_grad():
        for batch in (1, 8):
            image = torch.rand(batch, 1, height, width, device=args.device)
            reference = torch.full((batch,), 900.0, device=args.device)
            model(image, reference)
            sync()
            times = []
            for _ in range(5):
                start = time.perf_counter()
                model(image, reference)
                sync()
                times.append((time.perf_counter() - start) / batch)
            timings[batch] = statistics.median(times) * 1e3
            print(f"inference at {width}x{height}, batch {batch}: {timings[batch]:.1f} ms per image "
                  f"({args.device}, {args.threads} threads)")
    print(f"inference per image vs the {AIM_MS:.0f} ms aim: {AIM_MS / timings[1]:.2f}x (batch 1), "
          f"{AIM_MS / timings[8]:.2f}x (batch 8)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
