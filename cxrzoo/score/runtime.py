"""Load an exported IR once per Python worker and run it on batches of gray images."""
from __future__ import annotations

import atexit
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import openvino as ov

from cxrzoo.models.irdir import CARD, XML, read_card
from cxrzoo.models.irdir import FORMAT as IR_FORMAT, NotAnIRDirError  # noqa: F401 -- old paths
from cxrzoo.errors import InputError, JobFailedError

_CACHE: dict[tuple, tuple[tuple, "CompiledScorer"]] = {}  # (dir, precision, threads, heatmaps) -> (files, scorer)
_LOCK = threading.Lock()
# the compiled models go before the interpreter's teardown, while OpenVINO's libraries are whole (a test run's
# process crashed once at exit, after every test had passed)
atexit.register(_CACHE.clear)


class NoHeatmapsError(InputError):
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
            raise InputError(f"expected (N, {self.image_size}, {self.image_size}) uint8, got "
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
        out = self.compiled(images, share_inputs=False)  # copied: see SHARED_INPUTS_CORRUPT
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
        flight = _InFlight(self.compiled, self.jobs, self._outputs)
        try:
            previous = None
            for key, chunks in groups:
                ids = []
                for chunk in chunks:
                    self._check(chunk)
                    if len(chunk):
                        ids.append(flight.submit(chunk))
                if previous is not None:
                    yield (previous[0], *self._joined(flight.take(previous[1])))
                previous = (key, ids)
            if previous is not None:
                yield (previous[0], *self._joined(flight.take(previous[1])))
        finally:
            flight.settle()

    def _joined(self, got: list[tuple]) -> tuple[np.ndarray, np.ndarray | None]:
        if not got:
            return self._empty()
        return (np.concatenate([g[0] for g in got]),
                np.concatenate([g[1] for g in got]) if self.heatmaps else None)

    def _outputs(self, request: ov.InferRequest) -> tuple[np.ndarray, np.ndarray | None]:
        """A finished request's probabilities and (with ``heatmaps``) maps, copied out of its tensors."""
        return (np.array(request.get_output_tensor(0).data, dtype=np.float32),
                np.array(request.get_output_tensor(1).data, dtype=np.float16) if self.heatmaps else None)

    @property
    def jobs(self) -> int:
        """Infer requests kept in flight (OpenVINO's optimal number for the throughput hint)."""
        try:
            return max(2, int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        except RuntimeError:
            return 2


class InferenceFailedError(JobFailedError):
    """An asynchronous infer request failed, or its result could not be read."""


class _InFlight:
    """Infer requests started asynchronously and finished in the order they were started, by the thread that
    started them: it waits on each one itself and reads its outputs, so no Python code runs on OpenVINO's threads.

    (An ``AsyncInferQueue`` with a Python callback ran our code on them: an error there had to be carried across
    threads, and a queue left in a reference cycle by an error crashed the garbage collector that freed it.)
    """

    def __init__(self, compiled: ov.CompiledModel, jobs: int, read: Callable[[ov.InferRequest], tuple]) -> None:
        self._compiled, self._jobs, self._read = compiled, jobs, read
        self._idle: deque[ov.InferRequest] = deque()
        self._running: deque[tuple[int, ov.InferRequest]] = deque()  # (id, request), oldest first
        self._done: dict[int, tuple] = {}
        self._next = 0

    def submit(self, chunk: np.ndarray) -> int:
        """Start inference of ``chunk`` on a free request (finishing the oldest if all are busy); its id."""
        if not self._idle and len(self._running) < self._jobs:
            self._idle.append(self._compiled.create_infer_request())
        if not self._idle:
            self._finish_oldest()
        request = self._idle.popleft()
        request.start_async({0: chunk})
        cid, self._next = self._next, self._next + 1
        self._running.append((cid, request))
        return cid

    def _finish_oldest(self) -> None:
        cid, request = self._running.popleft()
        self._idle.append(request)  # free again, whatever happens below
        try:
            request.wait()
        except RuntimeError as e:
            raise InferenceFailedError(f"infer request {cid} failed in OpenVINO: {e}") from e
        try:
            self._done[cid] = self._read(request)
        except Exception as e:  # noqa: BLE001 -- any failure to read a result is the request's failure
            raise InferenceFailedError(f"infer request {cid} failed: {type(e).__name__}: {e}") from e

    def take(self, ids: list[int]) -> list[tuple]:
        """The outputs of requests ``ids`` (started earlier, in order), once each has finished."""
        while any(i not in self._done for i in ids):
            self._finish_oldest()
        return [self._done.pop(i) for i in ids]

    def settle(self) -> None:
        """Wait for every request still running (however the stream ended), so none outlives it."""
        while self._running:
            _, request = self._running.popleft()
            try:
                request.wait()
            except RuntimeError:  # its stream has ended: nobody takes its result
                pass


SHARED_INPUTS_CORRUPT = """OpenVINO's synchronous call shares the caller's input array by default (zero copy). With a
dynamic batch, a compiled model whose zero-copy request ran at one batch size and whose other requests run at
others corrupts the process's heap (a stress of sync calls mixed with asynchronous streams, batch sizes 1-8,
segfaulted or aborted in 6 runs of 6 within 300 rounds on OpenVINO 2026.4; copying the inputs, 0 of 6). Every
inference here copies its inputs; the copy of a batch of uint8 images is small beside the inference."""

def _outputs(model: ov.Model, heatmaps: bool, ir_dir: str | Path) -> ov.Model:
    """``model`` with only the outputs asked for (OpenVINO then leaves the heatmap branch out)."""
    by_name = {n: r for r in model.get_results() for n in r.output(0).get_names() | r.input_value(0).get_names()}
    if heatmaps and "heatmaps" not in by_name:
        raise NoHeatmapsError(f"{ir_dir} was exported without heatmaps; re-export it with `cxrzoo export` "
                              "(heatmaps are on by default)")
    if heatmaps or len(model.get_results()) == 1:
        return model
    return ov.Model([by_name["probabilities"]], model.get_parameters(), "cxrzoo")


def _files_signature(ir_dir: Path) -> tuple:
    """What changes when another model is exported into ``ir_dir``: inode, size and mtime of its files."""
    out = []
    for name in (XML, Path(XML).with_suffix(".bin").name, CARD):
        try:
            st = (ir_dir / name).stat()
        except OSError:
            out.append(None)
        else:
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


def load_scorer(ir_dir: str | Path, precision: str | None = None, threads: int | None = None,
                heatmaps: bool = False) -> CompiledScorer:
    """Compile ``ir_dir`` for the CPU, once per process (cached by path, precision, threads and heatmaps).

    A cached model is compiled again when the directory's files changed since (another model exported into
    the same directory: :func:`_files_signature`), so a Python worker never scores with a model replaced on
    disk.  ``precision`` is OpenVINO's ``INFERENCE_PRECISION_HINT``; by default the one the export recorded
    (``f32`` for FP32 and INT8 exports, ``bf16`` for BF16 ones).  ``heatmaps`` compiles the class
    activation maps too (:class:`NoHeatmapsError` if the IR has none).
    """
    where = Path(ir_dir).resolve()
    key = (str(where), precision, threads, heatmaps)
    with _LOCK:
        files = _files_signature(where)
        cached = _CACHE.get(key)
        if cached is None or cached[0] != files:
            card = read_card(ir_dir)
            hint = precision or card.get("runtime", {}).get("inference_precision_hint", "f32")
            # Spark runs a Python worker per concurrent task on the same cores: pinned threads of two
            # workers land on the same core (1 thread each measured half the throughput of unpinned)
            config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "THROUGHPUT", "ENABLE_CPU_PINNING": False}
            if threads:
                config["INFERENCE_NUM_THREADS"] = int(threads)
            core = ov.Core()
            model = _outputs(core.read_model(str(where / XML)), heatmaps, ir_dir)
            _CACHE[key] = (files, CompiledScorer(core.compile_model(model, "CPU", config), card, heatmaps))
        return _CACHE[key][1]
