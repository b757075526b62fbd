"""``xrecon train``: train the depth network on a synthetic dataset and write a MONAI bundle."""

from __future__ import annotations

import argparse
import sys

from .number_options import THREAD_COUNT


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train a network on a dataset from 'xrecon generate' (writes a MONAI bundle)",
        description="Train the dual-face depth network (masks + front/back depth per structure) on the 'train' "
                    "split, validating every epoch on the 'validation' split (held-out cases). Options come from "
                    "--config (JSON) and --set key=value overrides; 'xrecon train --show-config' prints the "
                    "defaults. Checkpoints are written every epoch and a run resumes when started again with the "
                    "same options. Runs unchanged under 'torchrun --nproc_per_node N xrecon train ...' "
                    "(the global batch is split across processes).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--dataset", metavar="DIR", help="dataset folder from 'xrecon generate'")
    parser.add_argument("--validation", metavar="DIR",
                        help="validate on this dataset's 'validation' split instead (e.g. held-out patients "
                             "generated with fewer views)")
    parser.add_argument("--task", choices=("depth", "landmarks"), default="depth",
                        help="depth: masks and front/back depth maps; landmarks: 2D landmarks with σ (Gaussian NLL) "
                             "and presence, from the dataset's projected landmarks")
    parser.add_argument("--out", metavar="BUNDLE", help="bundle folder to write (training state in BUNDLE/training)")
    parser.add_argument("--config", metavar="JSON", help="training options as a JSON object")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one option")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda")
    parser.add_argument("--threads", type=THREAD_COUNT, metavar="N",
                        help="CPU threads torch may use (None: torch's own choice, every core); fewer leave "
                             "cores to other work, and a thread that shares its core slows every step")
    parser.add_argument("--show-config", action="store_true", help="print the effective options and exit")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from SyntheticDataGenLib.errors import XreconInputError

    from ..networks.landmark_training import LandmarkTrainConfig, train_landmarks
    from ..networks.depth_training import TrainConfig, train

    config = (LandmarkTrainConfig if args.task == "landmarks" else TrainConfig).from_sources(args.config, args.set)
    if args.show_config:
        print(json.dumps(dataclasses.asdict(config), indent=2))
        return 0
    if not args.dataset or not args.out:
        raise XreconInputError("--dataset and --out are required")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    commands = [" ".join(["xrecon", *sys.argv[1:]])]
    if args.task == "landmarks":
        metrics = train_landmarks(args.dataset, args.out, config, device=args.device, commands=commands,
                                  validation_dir=args.validation)
    else:
        metrics = train(args.dataset, args.out, config, device=args.device, commands=commands,
                        validation_dir=args.validation)
    if metrics:
        print(json.dumps({k: v for k, v in metrics.items() if k != "validation"}))
    return 0
