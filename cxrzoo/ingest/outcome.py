"""What an ingest wrote: the listing's and the label match's counts, then the decode's outcome.

The decode runs lazily, inside the Parquet write, so its outcome is counted on the written dataset
(its ``error``, ``path`` and ``image_index`` columns only) before that dataset replaces the old one.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cxrzoo.ingest.reader import IngestReport

log = logging.getLogger(__name__)

EXAMPLES = 10  # file names kept per kind of problem


@dataclass
class IngestOutcome(IngestReport):
    """An :class:`~cxrzoo.ingest.reader.IngestReport` and what decoding the matched files gave.

    ``images_found`` files were listed and ``matched`` of them had a label row; each matched file is one row,
    ``decoded`` of them with an image and ``error_rows`` with ``error`` saying why not, counted by
    ``errors_by_reason`` (:func:`reason_column`), e.g. ``examples_with_error``.
    """

    rows: int = 0
    decoded: int = 0
    error_rows: int = 0
    errors_by_reason: dict[str, int] = field(default_factory=dict)
    examples_with_error: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: listed, ingested OK, error rows by reason, unmatched."""
        reasons = "; ".join(f"{n} {r}" for r, n in self.errors_by_reason.items())
        errors = f"{self.error_rows} error rows" + (f" ({reasons}; e.g. {', '.join(self.examples_with_error[:3])})"
                                                    if self.error_rows else "")
        return (f"{self.images_found} files listed, {self.decoded} ingested OK, {errors}; "
                f"{self.images_without_row} without a label row, {self.rows_without_image} label rows without an "
                f"image, {self.outside_split} outside the split")


def reason_column(error: Column, path: Column) -> Column:
    """An error message's reason, the same for every file it happens to: without the leading ``<file name>: ``,
    cut before the first ``(`` or ``;`` (the file's details), its numbers as ``N`` and quoted names or paths (with
    a ``.`` or ``/``) as ``'…'``."""
    name = F.element_at(F.split(path, "/"), -1)
    prefix = F.concat(name, F.lit(": "))
    message = F.when(error.startswith(prefix), error.substr(F.length(prefix) + 1, F.lit(1 << 20))).otherwise(error)
    head = F.trim(F.regexp_extract(message, r"^[^(;]*", 0))
    reason = F.regexp_replace(F.when(head != "", head).otherwise(message), r"'[^']*[./][^']*'", "'…'")
    reason = F.regexp_replace(reason, r"[0-9]+", "N")
    return F.substring(reason, 1, 160)


def decode_outcome(written: DataFrame, report: IngestReport, rows: int) -> IngestOutcome:
    """``report`` completed with the decode's outcome on ``written`` (the ingested dataset, ``rows`` rows);
    logs a warning with the error rows' reasons and first file names."""
    failed = written.where(F.col("error").isNotNull())
    by_reason = failed.groupBy(reason_column(F.col("error"), F.col("path")).alias("reason")).count().collect()
    reasons = dict(sorted(((r["reason"], int(r["count"])) for r in by_reason), key=lambda kv: (-kv[1], kv[0])))
    errors = sum(reasons.values())
    examples = [r.image_index for r in failed.select("image_index").orderBy("image_index").limit(EXAMPLES).collect()] \
        if errors else []
    out = IngestOutcome(**{f.name: getattr(report, f.name) for f in fields(report)}, rows=rows,
                        decoded=rows - errors, error_rows=errors, errors_by_reason=reasons,
                        examples_with_error=examples)
    if errors:
        log.warning("ingest: %d of %d rows could not be decoded (%s), e.g. %s", errors, rows,
                    "; ".join(f"{n} {r}" for r, n in reasons.items()), examples[:3])
    return out
