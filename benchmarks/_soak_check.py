"""The soak's accounting: every input file accounted for exactly once, against the ground truth.

A row is mapped to a file by its key: the ``path`` column where the output has one (ingest), else
``image_index`` (scores), which names a file by its absolute path, its last path components (``b/X.png``) or
its file name when that name is unique.  A row keyed only by a name that several files share cannot say which
file it is: it is *ambiguous*.

A file is accounted for when:

- good (or an orphan, in the scores): exactly one row, with an image/probabilities (and heatmaps when asked
  for) and no error;
- corrupt or truncated: exactly one row, no image/probabilities, an ``error`` that names the file;
- an orphan (ingest): no row, and counted in the report's ``images_without_row``;
- a duplicate-named copy: exactly one row that identifies it (good, or an error naming the file), or, for the
  whole group, a single row whose error says ``duplicate`` (or, in the ingest, the report's ``duplicate_*``
  fields naming the name) — a copy silently dropped, or two rows that cannot be told apart, fail;

and there is no row for anything else and no key twice.
"""
from __future__ import annotations

import os
from collections import Counter, defaultdict

MAX_PROBLEMS = 25


class _Files:
    def __init__(self, phase: dict) -> None:
        self.kind = phase["files"]
        self.by_name: dict[str, list[str]] = defaultdict(list)
        for p in self.kind:
            self.by_name[os.path.basename(p)].append(p)

    def of(self, key: str) -> str | None:
        """The file a row's key names, ``"?" + name`` when it is ambiguous, or None for no file of the phase."""
        k = key.removeprefix("file://").removeprefix("file:")
        if k in self.kind:
            return k
        cands = self.by_name.get(os.path.basename(k), [])
        if "/" in k:
            hits = [p for p in cands if p.endswith("/" + k.lstrip("/"))]
            return hits[0] if len(hits) == 1 else None
        if len(cands) == 1:
            return cands[0]
        return "?" + k if cands else None


def _names(error: str | None, path: str) -> bool:
    return bool(error) and os.path.basename(path) in error


def _row_problem(kind: str, path: str, r: dict, ok_key: str, heatmaps: bool) -> str | None:
    """Why row ``r`` does not account for the file ``path`` of ``kind``, or None."""
    name = os.path.basename(path)
    good = r[ok_key] and r["error"] is None and (not heatmaps or r.get("has_heat"))
    if kind in ("good", "orphan"):
        return None if good else f"{name} ({kind}): expected a good row, got error={r['error']!r}, " \
                                 f"{ok_key}={r[ok_key]}" + (f", heatmaps={r.get('has_heat')}" if heatmaps else "")
    if kind in ("corrupt", "truncated"):
        return None if (not r[ok_key] and _names(r["error"], path)) else \
            f"{name} ({kind}): expected an error row naming it, got error={r['error']!r}, {ok_key}={r[ok_key]}"
    return None if good or (not r[ok_key] and _names(r["error"], path)) else \
        f"{path} (duplicate name): its row is neither good nor an error naming it: error={r['error']!r}"


def account(rows: list[dict], phase: dict, key: str, ok_key: str, heatmaps: bool = False,
            ingest: bool = False, report: dict | None = None) -> dict:
    """Check ``rows`` (dicts with ``key``, ``ok_key``, ``error``[, ``has_heat``]) against ``phase``'s truth."""
    files = _Files(phase)
    problems: list[str] = []
    by_file: dict[str, list[dict]] = defaultdict(list)
    for k, c in Counter(r[key] for r in rows).items():
        if c > 1:
            problems.append(f"key {k!r} appears in {c} rows")
    for r in rows:
        f = files.of(r[key])
        if f is None:
            problems.append(f"row {r[key]!r} names no input file (error={r['error']!r})")
        else:
            by_file[f].append(r)
    csv = set(phase["csv_names"]) if ingest else None
    in_groups = {p for ps in phase["dup_groups"].values() for p in ps}
    reported_dups = _report_dups(report) if ingest else set()
    n_ok = n_err = expected_rows = 0
    for path, kind in phase["files"].items():
        if path in in_groups:
            continue
        rs = by_file.get(path, [])
        if ingest and os.path.basename(path) not in csv:
            if rs:
                problems.append(f"{path} has no label row but got {len(rs)} row(s)")
            continue
        expected_rows += 1
        if len(rs) != 1:
            problems.append(f"{path} ({kind}): {len(rs)} rows" + (" (silently missing)" if not rs else ""))
            continue
        p = _row_problem(kind, path, rs[0], ok_key, heatmaps)
        if p:
            problems.append(p)
        elif kind in ("good", "orphan"):
            n_ok += 1
        else:
            n_err += 1
    dups = {"groups": len(phase["dup_groups"]), "each_copy_a_row": 0, "reported_as_one": 0}
    for name, paths in phase["dup_groups"].items():
        ident = [by_file.get(p, []) for p in paths]
        amb = by_file.get("?" + name, [])
        if all(len(x) == 1 for x in ident) and not amb:
            dups["each_copy_a_row"] += 1
            expected_rows += len(paths)
            for p, x in zip(paths, ident):
                problems += [q for q in [_row_problem("duplicate", p, x[0], ok_key, heatmaps)] if q]
        elif not any(ident) and len(amb) == 1 and "duplicate" in (amb[0]["error"] or "").lower():
            dups["reported_as_one"] += 1
            expected_rows += 1
        elif ingest and not any(ident) and not amb and name in reported_dups:
            dups["reported_as_one"] += 1
        else:
            problems.append(f"duplicate name {name!r} ({' and '.join(paths)}): rows identifying each copy: "
                            f"{[len(x) for x in ident]}, rows keyed only by the shared name: {len(amb)}"
                            + (" -> a copy is silently missing" if sum(map(len, ident)) + len(amb) < len(paths)
                               else " -> the rows cannot be told apart" if len(amb) > 1 else ""))
    if len(rows) != expected_rows:
        problems.append(f"{len(rows)} rows written, {expected_rows} expected")
    out = {"ok": not problems, "rows": len(rows), "expected_rows": expected_rows, "good_rows": n_ok,
           "error_rows_of_bad_files": n_err, "duplicates": dups, "problems": problems[:MAX_PROBLEMS],
           "problem_count": len(problems)}
    if ingest:
        rep = check_report(report, rows, phase)
        out["report"] = rep
        out["ok"] = out["ok"] and rep["ok"]
    return out


def _report_dups(report: dict | None) -> set[str]:
    names: set[str] = set()
    for k, v in (report or {}).items():
        if "dup" in k and isinstance(v, list):
            names |= {os.path.basename(str(x)) for x in v}
    return names


def check_report(report: dict, rows: list[dict], phase: dict) -> dict:
    """The ingest report's counts against the ground truth and the rows written."""
    files, csv = phase["files"], set(phase["csv_names"])
    with_row = [p for p in files if os.path.basename(p) in csv]
    decoded = sum(1 for r in rows if r["has_image"] and r["error"] is None)
    want = {"images_found": len(files), "label_rows": len(csv), "images_without_row": len(phase["orphans"]),
            "rows_without_image": len(phase["missing"]), "rows": len(rows), "decoded": decoded,
            "error_rows": sum(1 for r in rows if r["error"] is not None)}
    bad = {k: {"report": report.get(k), "expected": v} for k, v in want.items() if report.get(k) != v}
    if report.get("matched") != len(with_row):  # files with a label row, duplicates included: one row each
        bad["matched"] = {"report": report.get("matched"), "expected": len(with_row)}
    for field, truth in (("examples_without_row", phase["orphans"]), ("examples_without_image", phase["missing"])):
        extra = set(report.get(field) or []) - set(truth)
        if extra:
            bad[field] = {"not in the ground truth": sorted(extra)[:5]}
    if "duplicate_names" in report:
        n = sum(1 for k in phase["dup_groups"] if k in csv)
        if report["duplicate_names"] != n:
            bad["duplicate_names"] = {"report": report["duplicate_names"], "expected": n}
    return {"ok": not bad, "mismatches": bad, "counts": {k: report.get(k) for k in list(want) + ["matched"]}}
