"""`python -m brightrun` is the `brightrun` command.

May import: cli.
"""

from brightrun.cli import main

main()
