"""Training data from human judgement: SFT examples, preference pairs and per-step app datasets.

May import: applogs, errors, workspace.
"""

from brightrun.datasets.build import (
    DatasetResult,
    DatasetSpec,
    build_dataset,
    list_datasets,
    read_examples,
)
from brightrun.datasets.rules import judgement_score, qualifies, sft_decision, split_of

__all__ = ["DatasetResult", "DatasetSpec", "build_dataset", "judgement_score", "list_datasets", "qualifies",
           "read_examples", "sft_decision", "split_of"]
