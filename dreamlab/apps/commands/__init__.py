"""One module per `dreamlab` subcommand: ``add_arguments(parser)`` and ``run(args) -> int``, thin layers over
the capabilities (``dreamlab.apps.cli`` holds the table of names)."""
