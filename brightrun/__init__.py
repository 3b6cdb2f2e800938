"""BrightRun: a workbench for the data that fine-tunes language models."""

__version__ = "0.1.0"
