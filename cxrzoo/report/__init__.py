"""The HTML report: one self-contained page of a model's results on a dataset (``cxrzoo report``)."""
from __future__ import annotations

from pathlib import Path


def write_report(spark, model_dir: str, data: str, out: str, boxes: str | None = None, image_side: int = 1024,
                 bootstrap: int = 1000, title: str | None = None) -> Path:
    """Score ``data`` with ``model_dir`` and write the report to ``out`` (atomically); return its path.

    The page shows a dataset summary, per-label ROC and precision-recall curves with bootstrap bands,
    the AUC table with 95 % CIs beside CheXNet's and the seed's, calibration (reliability diagram, ECE),
    the operating thresholds with the sensitivity and specificity they give, learning curves, the
    localisation table (with ``boxes``, NIH's ``BBox_List_2017.csv`` layout) and a gallery of heatmap
    overlays.  Images are inline: the file needs no network access.
    """
    from cxrzoo.atomic import write_text
    from cxrzoo.report.build import gather
    from cxrzoo.report.html import render

    data_ = gather(spark, model_dir, data, boxes=boxes, image_side=image_side, bootstrap=bootstrap, title=title)
    write_text(out, render(data_))
    return Path(out)
