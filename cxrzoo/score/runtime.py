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

_CACHE: dict[tuple, "CompiledScorer"] = {}
_LOCK = threading.Lock()


class NotAnIRDirError(ValueError):
    """The directory is not an exported cxrzoo OpenVINO model."""


class NoHeatmapsError(ValueError):
    """Heatmaps were asked of an IR exported without them."""


@dataclass
class CompiledScorer:
    """A compiled model with its card."""

    compiled: ov.CompiledModel
    card: dict
    heatmaps: bool = False  # the compiled model's second output is the class activation maps

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

    @property
    def heatmap_shape(self) -> tuple[int, int, int] | None:
        """(labels, h, w) of one image's heatmaps, when compiled with them."""
        return tuple(self.card["heatmaps"]["shape"][1:]) if self.heatmaps else None

    def _empty(self) -> tuple[np.ndarray, np.ndarray | None]:
        heat = np.zeros((0, *self.heatmap_shape), np.float16) if self.heatmaps else None
        return np.zeros((0, len(self.labels)), np.float32), heat

    def infer(self, images: np.ndarray) -> np.ndarray:
        """``(N, S, S)`` uint8 → ``(N, classes)`` float32 probabilities (one synchronous request)."""
        return self.infer_with_heatmaps(images)[0]

    def infer_with_heatmaps(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities and (with ``heatmaps``) the ``(N, classes, h, w)`` float16 maps, else None."""
        self._check(images)
        if len(images) == 0:
            return self._empty()
        out = self.compiled(images)
        heat = np.asarray(out[1], dtype=np.float16) if self.heatmaps else None
        return np.asarray(out[0], dtype=np.float32), heat

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
        (key, numpy.ndarray, numpy.ndarray or None)
            The group's key, its ``(sum of k, classes)`` float32 probabilities and, when compiled with
            ``heatmaps``, its ``(sum of k, classes, h, w)`` float16 maps.
        """
        results: dict[int, tuple] = {}
        ready = threading.Condition()
        queue = ov.AsyncInferQueue(self.compiled, self.jobs)

        def done(request: ov.InferRequest, cid: int) -> None:
            out = (np.array(request.get_output_tensor(0).data, dtype=np.float32),  # copies
                   np.array(request.get_output_tensor(1).data, dtype=np.float16) if self.heatmaps else None)
            with ready:
                results[cid] = out
                ready.notify_all()

        def collect(ids: list[int]) -> tuple[np.ndarray, np.ndarray | None]:
            with ready:
                ready.wait_for(lambda: all(i in results for i in ids))
                got = [results.pop(i) for i in ids]
            if not got:
                return self._empty()
            return (np.concatenate([g[0] for g in got]),
                    np.concatenate([g[1] for g in got]) if self.heatmaps else None)

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
                yield (previous[0], *collect(previous[1]))
            previous = (key, ids)
        queue.wait_all()
        if previous is not None:
            yield (previous[0], *collect(previous[1]))

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


def _outputs(model: ov.Model, heatmaps: bool, ir_dir: str | Path) -> ov.Model:
    """``model`` with only the outputs asked for (OpenVINO then leaves the heatmap branch out)."""
    by_name = {n: r for r in model.get_results() for n in r.output(0).get_names() | r.input_value(0).get_names()}
    if heatmaps and "heatmaps" not in by_name:
        raise NoHeatmapsError(f"{ir_dir} was exported without heatmaps; re-export it with `cxrzoo export` "
                              "(heatmaps are on by default)")
    if heatmaps or len(model.get_results()) == 1:
        return model
    return ov.Model([by_name["probabilities"]], model.get_parameters(), "cxrzoo")


def load_scorer(ir_dir: str | Path, precision: str | None = None, threads: int | None = None,
                heatmaps: bool = False) -> CompiledScorer:
    """Compile ``ir_dir`` for the CPU, once per process (cached by path, precision, threads and heatmaps).

    ``precision`` is OpenVINO's ``INFERENCE_PRECISION_HINT``; by default the one the export recorded
    (``f32`` for FP32 and INT8 exports, ``bf16`` for BF16 ones).  ``heatmaps`` compiles the class
    activation maps too (:class:`NoHeatmapsError` if the IR has none).
    """
    key = (str(Path(ir_dir).resolve()), precision, threads, heatmaps)
    with _LOCK:
        if key not in _CACHE:
            card = read_card(ir_dir)
            hint = precision or card.get("runtime", {}).get("inference_precision_hint", "f32")
            # Spark runs a Python worker per concurrent task on the same cores: pinned threads of two
            # workers land on the same core (1 thread each measured half the throughput of unpinned)
            config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "THROUGHPUT", "ENABLE_CPU_PINNING": False}
            if threads:
                config["INFERENCE_NUM_THREADS"] = int(threads)
            core = ov.Core()
            model = _outputs(core.read_model(str(Path(ir_dir) / XML)), heatmaps, ir_dir)
            _CACHE[key] = CompiledScorer(core.compile_model(model, "CPU", config), card, heatmaps)
        return _CACHE[key]
