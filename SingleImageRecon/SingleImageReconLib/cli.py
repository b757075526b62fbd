"""``xrecon``: the command-line face of the extension (see ``xrecon --help``).

Each subcommand lives in ``commands/<name>.py`` with ``add_parser`` and ``run``. Bad input
raises :class:`XreconInputError`, and a write that fails (a full disk) an OSError; either is
printed here as one line (exit status 2), never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from SyntheticDataGenLib.errors import XreconInputError

from .commands import bench, demo, evaluate, generate, info, labels, reconstruct, render, ssm, train
from .commands.device_option import check_device

COMMANDS = (demo, info, labels, render, generate, train, reconstruct, evaluate, ssm, bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xrecon",
        description="Reconstruct 3D bone surfaces from radiographs; render synthetic X-rays from CT. "
                    "World coordinates are Slicer's RAS in millimetres.",
        epilog="Run 'xrecon COMMAND --help' for the options of a command.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import SimpleITK as sitk  # after parsing: --help and argument errors need no image library

    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # ITK warnings would bury our one-line errors
    try:
        if getattr(args, "device", None):
            check_device(args.device)
        return args.run(args) or 0
    except XreconInputError as error:
        print(f"xrecon {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk or a vanished folder, wherever it struck
        where = f" ({error.filename})" if error.filename else ""
        print(f"xrecon {args.command}: error: {error.strerror or error}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"xrecon {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
