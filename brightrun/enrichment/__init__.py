"""Enrichment: raw conversations become training pairs with emotional context, arc stage and quality
scores (pipeline.py); the offline emotion lexicon it detects with (emotions.py); enrichment run in a background
process for the app, with its progress and what is pending (background.py).

May import: errors, models, quality, scaffolding, workspace.
"""

from brightrun.enrichment.background import EnrichmentState, enrichment_state, launch_enrichment, run_tracked
from brightrun.enrichment.pipeline import ENRICHMENT_VERSION, EnrichResult, enrich, interrupted

__all__ = ["ENRICHMENT_VERSION", "EnrichResult", "EnrichmentState", "enrich", "enrichment_state", "interrupted",
           "launch_enrichment", "run_tracked"]
