"""One module per ``xrecon`` subcommand, each with ``add_parser(subparsers)`` and ``run(args)``."""
