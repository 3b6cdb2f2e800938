"""A/B experiments on prompt versions and model settings, with honest statistics (brightrun.stats).

May import: errors, generation, stats, workspace.
"""

from brightrun.experiments.core import (
    ExperimentError,
    assign,
    create_experiment,
    list_experiments,
    load_experiment,
    run_experiment,
    set_status,
)
from brightrun.experiments.model import METRICS, Experiment, Variant
from brightrun.experiments.report import ExperimentReport, experiment_report, results_frame

__all__ = ["METRICS", "Experiment", "ExperimentError", "ExperimentReport", "Variant", "assign", "create_experiment",
           "experiment_report", "list_experiments", "load_experiment", "results_frame", "run_experiment",
           "set_status"]
