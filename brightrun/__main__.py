"""`python -m brightrun` is the `brightrun` command."""

from brightrun.cli import main

main()
