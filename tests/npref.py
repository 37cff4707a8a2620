"""Test references in plain NumPy: a float64 forward pass of a NetSpec with torchvision-layout weights, and AUC by
its pairwise definition."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cxrzoo.models.spec import NetSpec, pair


def _windows(x, kh, kw, stride, ph, pw, fill):
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    return sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]


def conv2d(x, w, b, stride, pad, groups):
    (ph, pw), (kh, kw) = pair(pad), w.shape[2:]
    win = _windows(x, kh, kw, stride, ph, pw, 0.0)
    n, c, ho, wo = win.shape[:4]
    g = groups
    win = win.reshape(n, g, c // g, ho, wo, kh, kw)
    wg = w.reshape(g, w.shape[0] // g, c // g, kh, kw)
    y = np.einsum("ngchwij,gocij->ngohw", win, wg, optimize=True).reshape(n, w.shape[0], ho, wo)
    return y if b is None else y + b.reshape(1, -1, 1, 1)


def forward(spec: NetSpec, weights: dict, x: np.ndarray) -> np.ndarray:
    """Logits of ``spec`` for ``x`` (N, C, S, S)."""
    out = {"input": np.asarray(x, np.float64)}
    for n in spec.nodes[1:]:
        a = n.attrs
        w = {k: np.asarray(v, np.float64) for k, v in weights.get(n.name, {}).items()}
        ins = [out[i] for i in n.inputs]
        if n.op == "conv":
            y = conv2d(ins[0], w["weight"], w.get("bias"), a["stride"], a["pad"], a.get("groups", 1))
        elif n.op == "bn":
            s = w["weight"] / np.sqrt(w["running_var"] + a.get("eps", 1e-5))
            y = (ins[0] - w["running_mean"].reshape(1, -1, 1, 1)) * s.reshape(1, -1, 1, 1) + w["bias"].reshape(
                1, -1, 1, 1)
        elif n.op == "relu":
            y = np.maximum(ins[0], 0)
        elif n.op == "relu6":
            y = np.clip(ins[0], 0, 6)
        elif n.op == "maxpool":
            p = a.get("pad", 0)
            y = _windows(ins[0], a["k"], a["k"], a["stride"], p, p, -np.inf).max(axis=(4, 5))
        elif n.op == "avgpool":  # count_include_pad=True
            p = a.get("pad", 0)
            y = _windows(ins[0], a["k"], a["k"], a["stride"], p, p, 0.0).mean(axis=(4, 5))
        elif n.op == "gap":
            y = ins[0].mean(axis=(2, 3), keepdims=True)
        elif n.op == "flatten":
            y = ins[0].reshape(ins[0].shape[0], -1)
        elif n.op == "dropout":
            y = ins[0]
        elif n.op == "linear":
            y = ins[0] @ w["weight"].T + w["bias"]
        elif n.op == "add":
            y = ins[0] + ins[1]
        elif n.op == "concat":
            y = np.concatenate(ins, axis=1)
        else:
            raise ValueError(n.op)
        out[n.name] = y
    return out[spec.output.name]


def pairwise_auc(y: np.ndarray, p: np.ndarray) -> float | None:
    """AUC by its definition: the share of (positive, negative) pairs ranked right, ties counting one half; None
    without positives or negatives (NaN labels, unknown, are left out)."""
    y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
    pos, neg = p[y == 1], p[y == 0]
    if not len(pos) or not len(neg):
        return None
    return float(((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum())
                 / (len(pos) * len(neg)))
