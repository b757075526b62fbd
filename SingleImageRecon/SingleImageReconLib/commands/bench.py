"""``xrecon bench``: run a benchmark of ``Testing/benchmarks`` from a source checkout."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from SyntheticDataGenLib.errors import XreconInputError

BENCHMARKS = {"drr": "bench_drr.py", "generate": "bench_generate.py", "labels": "bench_labels.py",
              "landmarks": "bench_landmarks.py", "model": "bench_model.py", "recon": "bench_recon.py",
              "ssm": "bench_ssm.py", "combined-fit": "bench_combined_fit.py"}


def benchmarks_dir() -> Path:
    import SyntheticDataGenLib

    return Path(SyntheticDataGenLib.__file__).resolve().parents[2] / "Testing" / "benchmarks"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="benchmarks that print ratios measured in one run",
        description="Run a benchmark (needs a source checkout). 'xrecon bench drr --help' lists its options; "
                    "'--vs diffdrr' needs the bench extra in a separate environment (see the README).")
    parser.add_argument("benchmark", choices=sorted(BENCHMARKS))
    parser.add_argument("options", nargs=argparse.REMAINDER, help="options of the benchmark")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    path = benchmarks_dir() / BENCHMARKS[args.benchmark]
    if not path.is_file():
        raise XreconInputError(f"benchmark {path} not found; benchmarks run from a source checkout")
    spec = importlib.util.spec_from_file_location(f"xrecon_bench_{args.benchmark}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(args.options)
