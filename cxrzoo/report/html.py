"""Render :class:`~cxrzoo.report.build.ReportData` as one self-contained HTML page (images inline, no scripts)."""
from __future__ import annotations

import base64
import html

from cxrzoo.bootstrap import CHEXNET_AUC, CHEXNET_MEAN, SEED_MEAN
from cxrzoo.localize import IOBB_THRESHOLDS
from cxrzoo.report import plots

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;max-width:1180px;color:#222}
h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}.note{color:#666;font-size:.85em}
.gallery{display:flex;flex-wrap:wrap;gap:.6em}.gallery figure{margin:0;width:200px;font-size:.75em}
.gallery img{width:200px;height:200px;display:block}.fp figcaption{color:#b00}.tp figcaption{color:#070}
img.plot{max-width:100%}
"""


def _img(data: bytes | None, alt: str, mime: str = "image/png", cls: str = "plot") -> str:
    if not data:
        return f'<p class="note">{html.escape(alt)}: nothing to draw</p>'
    return f'<img class="{cls}" alt="{html.escape(alt)}" src="data:{mime};base64,{base64.b64encode(data).decode()}">'


def _f(v, fmt: str = "{:.3f}") -> str:
    return "n/a" if v is None else fmt.format(v)


def _rows(cells: list[list]) -> str:
    return "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in cells)


def _dataset(d) -> str:
    s = d.summary
    views = ", ".join(f"{html.escape(str(k))}: {v}" for k, v in sorted(s["views"].items()))
    rows = [[html.escape(k), v, _f(v / s["images"] * 100, "{:.1f} %")] for k, v in s["prevalence"].items()]
    return (f"<h2>Dataset</h2><p>{s['images']} images of {s['patients']} patients; views: {views or 'n/a'}.</p>"
            f"<table><tr><th>label</th><th>positives</th><th>prevalence</th></tr>{_rows(rows)}</table>")


def _auc(d) -> str:
    a = d.auc
    rows = []
    for name, v in a.auc.items():
        ci = a.ci95.get(name)
        rows.append([html.escape(name), a.positives[name], _f(v), f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "n/a",
                     _f(CHEXNET_AUC.get(name)), _f(d.ece[name])])
    mci = a.ci95.get("mean_auc")
    rows.append(["<b>mean</b>", a.n, f"<b>{_f(a.mean_auc)}</b>", f"[{mci[0]:.3f}, {mci[1]:.3f}]" if mci else "n/a",
                 _f(CHEXNET_MEAN), _f(d.calibration["ece"])])
    few = ", ".join(f"{html.escape(k)} ({v})" for k, v in a.too_few.items()) or "none"
    return (f"<h2>AUC with 95 % bootstrap confidence intervals</h2><table><tr><th>label</th><th>positives</th>"
            f"<th>AUC</th><th>95 % CI</th><th>CheXNet</th><th>ECE</th></tr>{_rows(rows)}</table>"
            f"<p>Mean over the {len(a.measured)} labels with at least {a.min_positives} positives: "
            f"<b>{_f(a.headline_auc)}</b>. Too few positives to measure: {few}.</p>"
            f'<p class="note">CheXNet (DenseNet-121, NIH official patient-wise test split, mean {CHEXNET_MEAN}) and '
            f"the seed (Analytics Zoo ResNet-50, random image-wise split, mean {SEED_MEAN}) are published figures on "
            "other data, for reference only.</p>")


def _curves(d) -> str:
    a = d.auc
    return ("<h2>ROC curves</h2><p class='note'>Shaded: 95 % bootstrap band (200 resamples).</p>"
            + _img(plots.roc_grid(d.curves, a.auc, a.positives), "ROC curves per label")
            + "<h2>Precision-recall curves</h2><p class='note'>Dashed: prevalence.</p>"
            + _img(plots.pr_grid(d.curves, a.positives), "precision-recall curves per label")
            + "<h2>Calibration</h2>" + _img(plots.reliability_diagram(d.calibration), "reliability diagram"))


def _operating(d) -> str:
    if not d.operating:
        return "<h2>Operating thresholds</h2><p>The model has none (trained without a validation set).</p>"
    rows = [[html.escape(k), _f(v["threshold"], "{:.4f}"), html.escape(str(v["method"])), _f(v["sensitivity"]),
             _f(v["specificity"]), _f(v["validation_sensitivity"]), _f(v["validation_specificity"])]
            for k, v in d.operating.items()]
    return ("<h2>Operating thresholds</h2><p>Chosen per label on the validation set at training; a finding is "
            "a probability at or above its threshold.</p><table><tr><th>label</th><th>threshold</th><th>method</th>"
            "<th>sensitivity</th><th>specificity</th><th>validation sens.</th><th>validation spec.</th></tr>"
            f"{_rows(rows)}</table>")


def _learning(d) -> str:
    return "<h2>Learning curves</h2>" + _img(plots.learning_curves(d.model.get("history") or []), "learning curves")


def _localization(d) -> str:
    if d.localization is None:
        return "<h2>Localisation</h2><p>No box list given (BBox_List_2017.csv).</p>"
    head = "".join(f"<th>IoBB &ge; {t}</th>" for t in IOBB_THRESHOLDS)
    rows = [[html.escape(k), v["boxes"], *[_f(v["iobb"][str(t)]) for t in IOBB_THRESHOLDS], _f(v["pointing"]),
             _f(v["centre_baseline"])] for k, v in d.localization.items()]
    return ("<h2>Localisation</h2><p>Share of ground-truth boxes hit by the thresholded heatmap at each T(IoBB), as "
            "NIH's ChestX-ray14 paper reports it, and the pointing game (the heatmap's peak inside a box) against an "
            f"image-centre baseline.</p><table><tr><th>label</th><th>boxes</th>{head}<th>pointing</th>"
            f"<th>centre baseline</th></tr>{_rows(rows)}</table>")


def _gallery(d) -> str:
    parts = ["<h2>Heatmap gallery</h2><p class='note'>Per label, the highest-scoring true and false positives, "
             "class activation map over the network's center crop.</p>"]
    for name, shown in d.gallery.items():
        if not shown:
            continue
        figs = "".join(f'<figure class="{"tp" if kind.startswith("true") else "fp"}">'
                       + _img(jpg, f"{name} {kind} {ix}", "image/jpeg", "thumb")
                       + f"<figcaption>{html.escape(kind)}: {html.escape(ix)}, p = {prob:.3f}</figcaption></figure>"
                       for kind, ix, prob, jpg in shown)
        parts.append(f"<h3>{html.escape(name)}</h3><div class='gallery'>{figs}</div>")
    return "".join(parts)


def render(d) -> str:
    """The whole page."""
    m = d.model
    head = (f"<h1>{html.escape(d.title)}</h1><p>Model <b>{html.escape(str(m.get('model')))}</b>, "
            f"{m.get('input_size')}² input, trained by the {html.escape(str(m.get('engine')))} engine; "
            f"{d.auc.n} scored images"
            + (f" ({d.auc.unscored} left out: no image, or it could not be scored)" if d.auc.unscored else "")
            + ".</p>")
    body = "".join([head, _dataset(d), _auc(d), _curves(d), _operating(d), _learning(d), _localization(d),
                    _gallery(d)])
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(d.title)}</title>"
            f"<style>{_CSS}</style></head><body>{body}</body></html>\n")
