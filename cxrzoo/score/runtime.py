"""Load an exported IR once per Python worker and run it on batches of gray images."""
from __future__ import annotations

import atexit
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import openvino as ov

from cxrzoo.irformat import CARD, XML

_CACHE: dict[tuple, tuple[tuple, "CompiledScorer"]] = {}  # (dir, precision, threads, heatmaps) -> (files, scorer)
_LOCK = threading.Lock()
# the compiled models go before the interpreter's teardown, while OpenVINO's libraries are whole (a test run's
# process crashed once at exit, after every test had passed)
atexit.register(_CACHE.clear)
WAIT_SLICE = 30.0  # seconds awaiting results before asking OpenVINO to finish every request (a safety net)


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
        results = _Results()
        queue = ov.AsyncInferQueue(self.compiled, self.jobs)

        def done(request: ov.InferRequest, cid: int) -> None:
            # runs on an OpenVINO thread: an exception escaping it would never reach the waiting thread (and
            # OpenVINO re-raises it at an arbitrary later call), so it is recorded and raised by collect
            try:
                out = self._outputs(request)
            except Exception as e:  # noqa: BLE001 -- re-raised in the waiting thread by _Results.take
                results.fail(cid, e)
            else:
                results.put(cid, out)

        def collect(ids: list[int]) -> tuple[np.ndarray, np.ndarray | None]:
            got = results.take(ids, queue)
            if not got:
                return self._empty()
            return (np.concatenate([g[0] for g in got]),
                    np.concatenate([g[1] for g in got]) if self.heatmaps else None)

        queue.set_callback(done)
        try:
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
        finally:
            _release(queue)

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


def _ignore(request: ov.InferRequest, userdata: object) -> None:
    """The callback a released queue is left with: it refers to nothing."""


def _release(queue: ov.AsyncInferQueue) -> None:
    """Let ``queue`` be freed safely, however its generator ended (done, an error, closed early by its consumer).

    Its requests are awaited, so that no OpenVINO thread is still running a callback, and the callback is swapped
    for one that refers to nothing.  Otherwise an error raised through the generator kept the queue alive in a
    reference cycle (the traceback's frames hold it) whose callback closure refers back to the same objects; the
    garbage collector freeing that cycle crashed the process (a stress test here: a segmentation fault within 300
    failed streams).
    """
    try:
        queue.wait_all()
    except RuntimeError:  # a request that failed inside OpenVINO: already reported to the consumer, or moot
        pass
    queue.set_callback(_ignore)


class InferenceFailedError(RuntimeError):
    """An asynchronous infer request failed, or its result could not be read."""


class _Results:
    """The results of asynchronous infer requests by id, filled by OpenVINO's callback thread and taken by the
    thread that submitted them; a failure recorded by the callback is raised in the taking thread."""

    def __init__(self) -> None:
        self._done: dict[int, tuple] = {}
        self._failed: tuple[int, BaseException] | None = None
        self._ready = threading.Condition()

    def put(self, cid: int, out: tuple) -> None:
        """Record request ``cid``'s outputs."""
        with self._ready:
            self._done[cid] = out
            self._ready.notify_all()

    def fail(self, cid: int, error: BaseException) -> None:
        """Record that reading request ``cid``'s outputs raised ``error`` (the first failure is kept)."""
        with self._ready:
            self._failed = self._failed or (cid, error)
            self._ready.notify_all()

    def _raise_failure(self) -> None:
        if self._failed is not None:
            cid, error = self._failed
            raise InferenceFailedError(f"infer request {cid} failed: {type(error).__name__}: {error}") from error

    def take(self, ids: list[int], queue: ov.AsyncInferQueue) -> list[tuple]:
        """The outputs of requests ``ids``, in order, once all are done.

        Raises
        ------
        InferenceFailedError
            A request's outputs could not be read, or OpenVINO finished every request without delivering
            some of ``ids`` (a request that failed inside OpenVINO: its error, when OpenVINO reports one).
        """
        def settled() -> bool:
            return self._failed is not None or all(i in self._done for i in ids)

        with self._ready:
            finished = self._ready.wait_for(settled, timeout=WAIT_SLICE)
        if not finished:  # a safety net, not a deadline: let OpenVINO finish every request, then look again
            try:
                queue.wait_all()
            except RuntimeError as e:
                raise InferenceFailedError(f"an infer request failed: {e}") from e
        with self._ready:
            self._raise_failure()
            missing = [i for i in ids if i not in self._done]
            if missing:
                raise InferenceFailedError(f"OpenVINO finished infer requests {missing[:5]} without a result")
            return [self._done.pop(i) for i in ids]


IR_FORMAT = "cxrzoo-openvino/1"  # the card's "format": the layout this version writes and reads


def read_card(ir_dir: str | Path) -> dict:
    """The model card of an exported IR directory.

    Raises
    ------
    NotAnIRDirError
        When the directory lacks the IR or the card (naming a model directory of ``cxrzoo train`` for what it
        is), or the card is not a JSON object, is of another format than :data:`IR_FORMAT` or lacks the labels
        or the input shape; the message names the file and the fix.
    """
    d = Path(ir_dir)
    if not (d / XML).exists() or not (d / CARD).exists():
        from cxrzoo.models.modeldir import CARD as MODEL_CARD, WEIGHTS

        trained = (d / MODEL_CARD).is_file() and (d / WEIGHTS).is_file()
        if trained:
            raise NotAnIRDirError(f"{d} is a model directory written by `cxrzoo train`, not an exported IR; export it "
                                  f"first: `cxrzoo export --model {d} --out IR_DIR`")
        raise NotAnIRDirError(f"{d} is not an exported cxrzoo IR (need {XML} and {CARD}); "
                              "run `cxrzoo export --model MODEL_DIR --out IR_DIR`")
    card = d / CARD
    again = "re-export it with `cxrzoo export --model MODEL_DIR --out IR_DIR`"
    try:
        info = json.loads(card.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise NotAnIRDirError(f"{card} is not a JSON text file (binary content at byte {e.start}): the IR is "
                              f"damaged; {again}") from None
    except json.JSONDecodeError as e:
        raise NotAnIRDirError(f"{card} is not valid JSON ({e.msg} at line {e.lineno} column {e.colno}): the IR is "
                              f"damaged; {again}") from None
    if not isinstance(info, dict):
        raise NotAnIRDirError(f"{card} holds a JSON {type(info).__name__}, not the card's object: the IR is damaged; "
                              f"{again}")
    if info.get("format") != IR_FORMAT:
        raise NotAnIRDirError(f"{d} was written by another version of cxrzoo (format {info.get('format') or 'none'};"
                              f" this version reads {IR_FORMAT}); {again}")
    shape = info.get("input", {}).get("shape") if isinstance(info.get("input"), dict) else None
    if "labels" not in info or not isinstance(shape, list) or len(shape) < 2:
        raise NotAnIRDirError(f"{card} lacks the labels or the input shape: written by another version of cxrzoo "
                              f"or edited; {again}")
    return info


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
