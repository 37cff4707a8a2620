"""Run in a fresh JVM with BigDL's MKL-DNN engine (tests/test_mkldnn.py): train each named backbone briefly.

Prints one line per model: ``name loss0 loss1 loss2 helpers drift`` (the ReLU6 helper layers and their largest
departure from their fixed values after training).  Each epoch is one full-batch iteration (8 images; BigDL
coalesces the data to one partition per node, and MKL-DNN trains one model per JVM), so every loss is the same
objective (BatchNorm statistics over the same 8 images) measured at the weights before that epoch's step.
``tiny-masked`` is ``tiny`` with a third of its labels unknown (NaN), trained through the masked loss (a
BigDL autograd loss, which MKL-DNN trains on only if the criterion stores its gradient).
"""
from __future__ import annotations

import gc
import sys

import numpy as np

from cxrzoo.engine.base import TrainConfig, get_engine
from cxrzoo.models import create_spec
from cxrzoo.session import get_spark
from cxrzoo.train.feed import features_data

SIZES = {"inception_v3": 139, "mobilenet_v2": 96}  # 32² for the others (MobileNetV2's BN needs > 1×1 maps)


def main() -> None:
    spark = get_spark(master="local[2]", driver_memory="10g", engine="bigdl", engine_type="mkldnn")
    engine = get_engine("bigdl", engine_type="mkldnn")
    for name in sys.argv[1:]:
        masked = name.endswith("-masked")
        name = name.removesuffix("-masked")
        size = SIZES.get(name, 32)
        spec = create_spec(name, num_classes=14, dropout=0.0, input_size=size)
        net = engine.build(spec, seed=1)
        rng = np.random.default_rng(1)
        x = rng.normal(0, 1, (8, 3, size, size)).astype(np.float32)
        y = (rng.random((8, 14)) < 0.3).astype(np.float32)
        if masked:
            y[rng.random((8, 14)) < 1 / 3] = np.nan
        data = features_data(spark.createDataFrame([(x[i].ravel().tolist(), y[i].tolist()) for i in range(8)],
                                                   "features array<float>, labels array<float>"),
                             "features", "labels", size)
        trainer = engine.trainer(net, spec, TrainConfig(epochs=3, batch_size=8, learning_rate=1e-4,
                                                              masked=masked))
        losses = [trainer.train_epoch(data, e).loss for e in range(3)]
        trainer.close()
        fixed = getattr(net, "cxr_fixed_layers", [])  # MobileNetV2's ReLU6 helpers: exact after every epoch
        drift = max((float(np.abs(np.asarray(a).ravel() - np.asarray(b).ravel()).max())
                     for f in fixed for a, b in zip(f.module.get_weights(), f.weights)), default=0.0)
        print(name + ("-masked" if masked else ""), *losses, len(fixed), drift, flush=True)  # noqa: T201
        del net, trainer, data
        gc.collect()
        spark.sparkContext._jvm.System.gc()


if __name__ == "__main__":
    main()
