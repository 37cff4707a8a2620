"""Preprocessing: the augmentation/normalization chain and its Spark ML Transformer."""
from cxrzoo.preprocess.chain import ChainConfig, apply_chain, row_uniforms
from cxrzoo.preprocess.transformer import CXRPreprocessor

__all__ = ["CXRPreprocessor", "ChainConfig", "apply_chain", "row_uniforms"]
