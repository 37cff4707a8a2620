"""BigDL's own augmentation chain inside the JVM, as the seed runs it, timed on cached images.

The images are encoded once as uncompressed BMP (BigDL's readers decode to 3-channel
BGR mats) and cached in the JVM as an ``RDD[Array[Byte]]`` on one partition.  Each
timed run builds fresh ImageFeatures from those bytes with ``ImageSet.rddBytes``
(which decodes them), optionally applies the chain ImageCenterCrop → ImageHFlip →
ImageBrightness → ImageChannelNormalize (Caffe means) → ImageMatToTensor, and counts.
The chain's own rate is ``n / (median(decode + chain) - median(decode))``: BMP decoding
is a memcpy-like cost and both medians come from interleaved runs of the same session.
Fresh features per run matter: BigDL's transforms mutate cached ImageFeatures in place.
"""
from __future__ import annotations

import logging
import statistics
import time

import cv2
import numpy as np

log = logging.getLogger("bench_augment")


def bigdl_jvm_chain_rate(images: np.ndarray, repeats: int) -> dict:
    """Images/s of BigDL's JVM chain on one core (``local[1]``) for ``images`` (N, 256, 256) uint8."""
    from bigdl.dllib.feature.common import ChainedPreprocessing
    from bigdl.dllib.feature.image.imagePreprocessing import (ImageBrightness, ImageCenterCrop,
                                                              ImageChannelNormalize, ImageHFlip,
                                                              ImageMatToTensor)

    from cxrzoo.session import get_spark

    sc = get_spark(master="local[1]", app_name="bench-augment").sparkContext
    data = [cv2.imencode(".bmp", cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))[1].tobytes() for img in images]
    jbytes = sc.parallelize(data, 1)._to_java_object_rdd().rdd().cache()  # Python bytes arrive as byte[]
    jbytes.count()
    image_set = sc._jvm.com.intel.analytics.bigdl.dllib.feature.image.ImageSet
    defaults = [getattr(image_set, f"rddBytes$default${k}")() for k in (2, 3, 4, 5)]
    crop = images.shape[1] - 32
    chain = ChainedPreprocessing([ImageCenterCrop(crop, crop), ImageHFlip(), ImageBrightness(0.0, 32.0),
                                  ImageChannelNormalize(123.68, 116.779, 103.939), ImageMatToTensor()])

    def run(with_chain: bool) -> float:
        t0 = time.perf_counter()
        s = image_set.rddBytes(jbytes, *defaults)
        if with_chain:
            s = s.transform(chain.value)
        s.toDistributed().rdd().count()
        return time.perf_counter() - t0

    run(False), run(True)  # warm-up (JIT)
    decode, both = [], []
    for _ in range(repeats):
        decode.append(run(False))
        both.append(run(True))
    jbytes.unpersist(False)
    chain_s = statistics.median(both) - statistics.median(decode)
    return {"images_per_s": len(images) / chain_s if chain_s > 0 else None,
            "decode_s": statistics.median(decode), "decode_and_chain_s": statistics.median(both)}
