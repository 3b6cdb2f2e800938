"""The `brightrun` command line: the typer app (main.py) and one module per command group (jobs, prompts,
quality, experiments, training files, fine-tuning, feedback and datasets, app logs, doctor), with the
options and output helpers they share (common.py). Commands parse options, call the domain packages and
print; the work itself lives in those packages.

May import: applogs, datasets, demo, doctor, enrichment, errors, experiments, explore, exports, feedback, finetuning, generation, models, prompts, providers, quality, training_files, validation, workspace.
"""

from brightrun.cli.main import main

__all__ = ["main"]
