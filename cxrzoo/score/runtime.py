"""Load an exported IR once per Python worker and run it on batches of gray images."""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import openvino as ov

from cxrzoo.irformat import CARD, XML

_CACHE: dict[tuple[str, str], "CompiledScorer"] = {}
_LOCK = threading.Lock()


class NotAnIRDirError(ValueError):
    """The directory is not an exported cxrzoo OpenVINO model."""


@dataclass
class CompiledScorer:
    """A compiled model with its card."""

    compiled: ov.CompiledModel
    card: dict

    @property
    def image_size(self) -> int:
        """Side of the square uint8 images the model takes."""
        return int(self.card["input"]["shape"][1])

    @property
    def labels(self) -> list[str]:
        """Output label names."""
        return list(self.card["labels"])

    def _check(self, images: np.ndarray) -> None:
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (self.image_size,) * 2:
            raise ValueError(f"expected (N, {self.image_size}, {self.image_size}) uint8, got "
                             f"{images.dtype} {images.shape}")

    def infer(self, images: np.ndarray) -> np.ndarray:
        """``(N, S, S)`` uint8 → ``(N, classes)`` float32 probabilities (one synchronous request)."""
        self._check(images)
        if len(images) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        return np.asarray(self.compiled(images)[0], dtype=np.float32)

    def infer_stream(self, chunks: Iterable[np.ndarray]) -> np.ndarray:
        """Probabilities of images arriving as consecutive ``(k, S, S)`` uint8 chunks, in order.

        Each chunk is submitted as an asynchronous infer request as soon as it is produced, so
        whatever produces the next chunk (decoding) runs while OpenVINO computes the previous ones.
        """
        return next(self.infer_groups([(None, chunks)]))[1]

    def infer_groups(self, groups: Iterable[tuple[object, Iterable[np.ndarray]]]
                     ) -> Iterator[tuple[object, np.ndarray]]:
        """Probabilities per group of chunks (e.g. one Arrow batch), in order, with no drain between groups.

        Every chunk of a group is submitted as an asynchronous infer request while the group's
        iterator produces them; the previous group is then awaited and yielded, so inference
        of this group's last chunks overlaps whatever the caller does before asking for the next
        group (sending results, reading and decoding the next batch).

        Parameters
        ----------
        groups : iterable of (key, iterable of (k, S, S) uint8 arrays)
            Consumed lazily, one group at a time.

        Yields
        ------
        (key, numpy.ndarray)
            The group's key and its ``(sum of k, classes)`` float32 probabilities.
        """
        results: dict[int, np.ndarray] = {}
        ready = threading.Condition()
        queue = ov.AsyncInferQueue(self.compiled, self.jobs)

        def done(request: ov.InferRequest, cid: int) -> None:
            out = np.array(request.get_output_tensor(0).data, dtype=np.float32)  # a copy
            with ready:
                results[cid] = out
                ready.notify_all()

        def collect(ids: list[int]) -> np.ndarray:
            with ready:
                ready.wait_for(lambda: all(i in results for i in ids))
                got = [results.pop(i) for i in ids]
            return np.concatenate(got) if got else np.zeros((0, len(self.labels)), np.float32)

        queue.set_callback(done)
        cid, previous = 0, None
        for key, chunks in groups:
            ids = []
            for chunk in chunks:
                self._check(chunk)
                if len(chunk):
                    queue.start_async({0: chunk}, userdata=cid)
                    ids.append(cid)
                    cid += 1
            if previous is not None:
                yield previous[0], collect(previous[1])
            previous = (key, ids)
        queue.wait_all()
        if previous is not None:
            yield previous[0], collect(previous[1])

    @property
    def jobs(self) -> int:
        """Infer requests kept in flight (OpenVINO's optimal number for the throughput hint)."""
        try:
            return max(2, int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        except RuntimeError:
            return 2


def read_card(ir_dir: str | Path) -> dict:
    """The model card of an exported IR directory."""
    d = Path(ir_dir)
    if not (d / XML).exists() or not (d / CARD).exists():
        raise NotAnIRDirError(f"{d} is not an exported cxrzoo IR (need {XML} and {CARD}); "
                              "run `cxrzoo export --model MODEL_DIR --out IR_DIR`")
    return json.loads((d / CARD).read_text())


def load_scorer(ir_dir: str | Path, precision: str | None = None, threads: int | None = None) -> CompiledScorer:
    """Compile ``ir_dir`` for the CPU, once per process (cached by path, precision and threads).

    ``precision`` is OpenVINO's ``INFERENCE_PRECISION_HINT``; by default the one the export recorded
    (``f32`` for FP32 and INT8 exports, ``bf16`` for BF16 ones).
    """
    key = (str(Path(ir_dir).resolve()), precision, threads)
    with _LOCK:
        if key not in _CACHE:
            card = read_card(ir_dir)
            hint = precision or card.get("runtime", {}).get("inference_precision_hint", "f32")
            # Spark runs a Python worker per concurrent task on the same cores: pinned threads of two
            # workers land on the same core (1 thread each measured half the throughput of unpinned)
            config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "THROUGHPUT", "ENABLE_CPU_PINNING": False}
            if threads:
                config["INFERENCE_NUM_THREADS"] = int(threads)
            compiled = ov.Core().compile_model(str(Path(ir_dir) / XML), "CPU", config)
            _CACHE[key] = CompiledScorer(compiled, card)
        return _CACHE[key]
