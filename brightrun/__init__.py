"""BrightRun: a workbench for the data that fine-tunes language models.

May import: nothing from BrightRun.
"""

__version__ = "0.1.0"
