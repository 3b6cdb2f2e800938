"""Prompts: the registry of prompt-template versions with their labels and diffs (registry.py), a new version
from text edited in the app (editing.py), which prompt features go with better outcomes (effectiveness.py,
associational statistics from brightrun.stats), and the chain of steps in an imported app log (chain.py).

May import: errors, generation, models, scaffolding, stats, workspace.
"""

from brightrun.prompts.registry import diff, remove_label, set_label, versions

__all__ = ["diff", "remove_label", "set_label", "versions"]
