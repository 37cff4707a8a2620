"""Scoring: exported OpenVINO models over Spark DataFrames."""
from cxrzoo.score.runtime import CompiledScorer, NotAnIRDirError, load_scorer, read_card
from cxrzoo.score.transformer import OpenVINOScorer

__all__ = ["CompiledScorer", "NotAnIRDirError", "OpenVINOScorer", "load_scorer", "read_card"]
