"""Enrichment: raw conversations become training pairs with emotional context, arc stage and quality
scores (pipeline.py); the offline emotion lexicon it detects with (emotions.py).

May import: errors, models, quality, scaffolding, workspace.
"""

from brightrun.enrichment.pipeline import ENRICHMENT_VERSION, EnrichResult, enrich, interrupted

__all__ = ["ENRICHMENT_VERSION", "EnrichResult", "enrich", "interrupted"]
