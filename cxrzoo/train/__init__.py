"""Training: the Spark ML Estimator and its Model."""
from cxrzoo.train.estimator import CXREstimator, CXRModel
from cxrzoo.train.persist import ModelDirError, load_weights

__all__ = ["CXREstimator", "CXRModel", "ModelDirError", "load_weights"]
