"""Training: the Spark ML Estimator and its Model."""
from cxrzoo.models.modeldir import ModelDirError
from cxrzoo.train.estimator import CXREstimator, CXRModel

__all__ = ["CXREstimator", "CXRModel", "ModelDirError"]
