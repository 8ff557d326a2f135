"""Command-line interface: ``main(argv) -> int``, one module per subcommand."""
