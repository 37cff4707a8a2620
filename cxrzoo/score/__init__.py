"""Scoring: exported OpenVINO models over Spark DataFrames."""
from cxrzoo.score.runtime import CompiledScorer, NoHeatmapsError, NotAnIRDirError, load_scorer, read_card
from cxrzoo.score.transformer import OpenVINOScorer, heatmaps_of

__all__ = ["CompiledScorer", "NoHeatmapsError", "NotAnIRDirError", "OpenVINOScorer", "heatmaps_of", "load_scorer",
           "read_card"]
