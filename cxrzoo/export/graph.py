"""Build an OpenVINO model from a NetSpec and its trained weights, preprocessing included.

The graph takes ``uint8`` gray images ``(N, S, S)`` as they come out of ingest
and does, inside OpenVINO: center crop, gray → 3 channels, channel
normalization, the network, and a sigmoid.  Batch norm is folded into a
per-channel scale and shift.

A second output, ``heatmaps``, holds the class activation maps (CheXNet's method, after Zhou et al.
2016): the last feature map before global average pooling weighted by the classifier, per label,
``CAM_k(y, x) = w_k · F(y, x) + b_k`` as float16, so that the mean of a label's map is its logit.
"""
from __future__ import annotations

import numpy as np
import openvino as ov
import openvino.opset13 as ops

from cxrzoo.models.spec import NetSpec, pair, param_shapes
from cxrzoo.errors import InputError


class WeightMismatchError(InputError):
    """Weights do not fit the network (every mismatch is listed)."""


def _const(a: np.ndarray | list) -> ov.Node:
    return ops.constant(np.asarray(a, dtype=np.float32) if not isinstance(a, np.ndarray) or a.dtype != np.int64
                        else a)


def _i64(values: list[int]) -> ov.Node:
    return ops.constant(np.array(values, dtype=np.int64))


def check_weights(spec: NetSpec, weights: dict) -> None:
    """Raise :class:`WeightMismatchError` listing every missing or mis-shaped tensor."""
    problems = []
    for name, kinds in param_shapes(spec).items():
        for kind, shape in kinds.items():
            got = weights.get(name, {}).get(kind)
            if got is None:
                problems.append(f"{name}/{kind}: missing (expected {shape})")
            elif tuple(got.shape) != shape:
                problems.append(f"{name}/{kind}: shape {tuple(got.shape)}, expected {shape}")
    if problems:
        raise WeightMismatchError(f"{len(problems)} weight mismatch(es):\n  " + "\n  ".join(problems))


def _network(x: ov.Node, spec: NetSpec, weights: dict) -> dict[str, ov.Node]:
    out: dict[str, ov.Node] = {"input": x}
    for n in spec.nodes[1:]:
        a, w = n.attrs, weights.get(n.name, {})
        ins = [out[i] for i in n.inputs]
        if n.op == "conv":
            p = list(pair(a["pad"]))
            if a.get("groups", 1) == 1:
                y = ops.convolution(ins[0], _const(w["weight"]), [a["stride"]] * 2, p, p, [1, 1])
            else:
                g = a["groups"]
                wg = w["weight"].reshape(g, a["cout"] // g, *w["weight"].shape[1:])
                y = ops.group_convolution(ins[0], _const(wg), [a["stride"]] * 2, p, p, [1, 1])
            if "bias" in w:
                y = ops.add(y, _const(w["bias"].reshape(1, -1, 1, 1)))
        elif n.op == "bn":
            scale = w["weight"] / np.sqrt(w["running_var"] + a.get("eps", 1e-5))
            shift = w["bias"] - w["running_mean"] * scale
            y = ops.add(ops.multiply(ins[0], _const(scale.reshape(1, -1, 1, 1))), _const(shift.reshape(1, -1, 1, 1)))
        elif n.op == "relu":
            y = ops.relu(ins[0])
        elif n.op == "relu6":
            y = ops.clamp(ins[0], 0.0, 6.0)
        elif n.op == "maxpool":
            k, s, p = a["k"], a["stride"], a.get("pad", 0)
            y = ops.max_pool(ins[0], [s, s], [1, 1], [p, p], [p, p], [k, k], "floor").output(0)
        elif n.op == "avgpool":  # count_include_pad=True, as torch's default: exclude_pad=False
            k, s, p = a["k"], a["stride"], a.get("pad", 0)
            y = ops.avg_pool(ins[0], [s, s], [p, p], [p, p], [k, k], False, "floor")
        elif n.op == "gap":
            y = ops.reduce_mean(ins[0], _i64([2, 3]), True)
        elif n.op == "flatten":
            y = ops.reshape(ins[0], _i64([-1, a["channels"]]), False)
        elif n.op == "dropout":
            y = ins[0]
        elif n.op == "linear":
            y = ops.add(ops.matmul(ins[0], _const(w["weight"]), False, True), _const(w["bias"]))
        elif n.op == "add":
            y = ops.add(ins[0], ins[1])
        elif n.op == "concat":
            y = ops.concat(ins, 1)
        else:  # pragma: no cover - NetSpec validates ops
            raise InputError(n.op)
        out[n.name] = y
    return out


def cam_layers(spec: NetSpec) -> tuple[str, str] | None:
    """(feature map node, classifier node) when the network ends ``gap → flatten → [dropout] → linear``, else None."""
    nodes = {n.name: n for n in spec.nodes}
    fc = spec.output
    if fc.op != "linear":
        return None
    cur = nodes[fc.inputs[0]]
    while cur.op == "dropout":
        cur = nodes[cur.inputs[0]]
    if cur.op != "flatten" or nodes[cur.inputs[0]].op != "gap":
        return None
    return nodes[cur.inputs[0]].inputs[0], fc.name


def _cam(out: dict[str, ov.Node], spec: NetSpec, weights: dict) -> ov.Node | None:
    layers = cam_layers(spec)
    if layers is None:
        return None
    feature, fc = layers
    w, b = weights[fc]["weight"], weights[fc]["bias"]
    cam = ops.convolution(out[feature], _const(w.reshape(*w.shape, 1, 1)), [1, 1], [0, 0], [0, 0], [1, 1])
    cam = ops.add(cam, _const(b.reshape(1, -1, 1, 1)))
    return ops.convert(cam, ov.Type.f16, name="heatmaps")


def build_openvino_model(spec: NetSpec, weights: dict, image_size: int, mean: tuple[float, ...],
                         std: tuple[float, ...], heatmaps: bool = False) -> ov.Model:
    """The full scoring graph: uint8 ``image`` (N, S, S) → ``probabilities`` (N, classes)
    [and ``heatmaps`` (N, classes, h, w) float16].

    Parameters
    ----------
    spec : NetSpec
    weights : dict
        ``{node: {kind: array}}`` as :meth:`cxrzoo.engine.base.Engine.weights` returns.
    image_size : int
        S, the side of the ingested gray images; the crop is ``spec.input_size``.
    mean, std : tuple of 3 floats
        Channel normalization on 0–255 pixels.
    heatmaps : bool
        Add the class activation maps as a second output (where the network ends in global
        average pooling and a linear classifier; every registry backbone does).
    """
    check_weights(spec, weights)
    c = spec.input_size
    if image_size < c:
        raise InputError(f"image size {image_size} is smaller than the network input {c}")
    image = ops.parameter([-1, image_size, image_size], ov.Type.u8, name="image")
    x = ops.convert(image, ov.Type.f32)
    y0 = (image_size - c) // 2
    x = ops.slice(x, _i64([y0, y0]), _i64([y0 + c, y0 + c]), _i64([1, 1]), _i64([1, 2]))
    x = ops.unsqueeze(x, _i64([1]))
    x = ops.concat([x, x, x], 1)
    x = ops.subtract(x, _const(np.array(mean, np.float32).reshape(1, 3, 1, 1)))
    if any(s != 1.0 for s in std):
        x = ops.divide(x, _const(np.array(std, np.float32).reshape(1, 3, 1, 1)))
    out = _network(x, spec, weights)
    probs = ops.sigmoid(out[spec.output.name], name="probabilities")
    probs.output(0).set_names({"probabilities"})
    image.output(0).set_names({"image"})
    results = [probs]
    cam = _cam(out, spec, weights) if heatmaps else None
    if cam is not None:
        cam.output(0).set_names({"heatmaps"})
        results.append(cam)
    return ov.Model(results, [image], "cxrzoo")
