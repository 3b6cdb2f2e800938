"""Scaffolding: the YAML library of personas, emotional arcs, training topics and `{{placeholder}}` prompt
templates, loaded and checked (library.py); rendering templates (templates.py); declared variation and its
per-sample draws (variation.py); the library as tables for the workspace's views (frames.py).

May import: errors, models.
"""

from brightrun.scaffolding.frames import scaffolding_frames, template_rows
from brightrun.scaffolding.library import Scaffolding, default_library, load_scaffolding
from brightrun.scaffolding.templates import render_template, scaffold_context
from brightrun.scaffolding.variation import (
           draw_from,
           draw_variation,
           options_for,
           parse_variation,
           variation_json,
)

__all__ = ["Scaffolding", "default_library", "draw_from", "draw_variation", "load_scaffolding", "options_for",
           "parse_variation", "render_template", "scaffold_context", "scaffolding_frames", "template_rows", "variation_json"]
