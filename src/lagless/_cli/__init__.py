"""One module per ``lagless`` command (see ``lagless.cli.COMMANDS``)."""
