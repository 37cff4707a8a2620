"""The BigDL engine's training options (rows of :mod:`cxrzoo.train.options`); imports nothing of BigDL."""
from __future__ import annotations

from cxrzoo.params import Option, _one_of

OPTIONS = (
    Option("bigdlEngineType", "mkldnn", "BigDL's compute engine, a JVM-wide setting that the SparkSession must start "
           "with (cxrzoo spark-conf --engine bigdl): 'mkldnn', on which every backbone trains, or 'mklblas' "
           "(exhausts the heap on ResNet-50 and DenseNet-121, but honours freezeEpochs); left unset, training "
           "follows the running session", _one_of("bigdlEngineType", {"mklblas", "mkldnn"}), "--bigdl-engine-type",
           choices=("mkldnn", "mklblas"), owner="bigdl"),
)
