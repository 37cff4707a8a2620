"""``cxrzoo`` command line: synth, ingest, train, evaluate, export, score, predict, report, demo, bench."""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys

from cxrzoo.console import stdout
from cxrzoo.stdio import fd_stdout_to_stderr
from cxrzoo.errors import InputError, PathNotFoundError, exit_status

log = logging.getLogger("cxrzoo")


def _engine_options(args: argparse.Namespace, engine: str | None) -> dict:
    """The engine's own options given on the command line (its rows' flags), by the engine's keywords."""
    from cxrzoo.engine.base import engine_class, engine_option_rows, resolve_engine

    if engine is None:
        return {}
    dest = {o.name: o.dest for o in engine_option_rows()}
    cls = engine_class(resolve_engine(engine))
    return {kw: getattr(args, dest[param]) for kw, param in cls.option_params().items()
            if getattr(args, dest[param], None) is not None}


def _spark(args: argparse.Namespace, engine: str | None = None):
    from cxrzoo.session import get_spark

    engine = engine or getattr(args, "engine", None)
    return get_spark(master=getattr(args, "master", None), driver_memory=getattr(args, "driver_memory", "10g"),
                     executor_cores=getattr(args, "executor_cores", None),
                     executor_memory=getattr(args, "executor_memory", None),
                     num_executors=getattr(args, "num_executors", None), engine=engine,
                     **_engine_options(args, engine))


def cmd_spark_conf(args: argparse.Namespace) -> None:
    from cxrzoo.session import spark_conf
    from cxrzoo.sparkconf import submit_flags

    conf = spark_conf(engine=args.engine, master=args.master, driver_memory=args.driver_memory,
                      executor_cores=args.executor_cores, executor_memory=args.executor_memory,
                      num_executors=args.num_executors, archive=args.archive, deploy_mode=args.deploy_mode,
                      **_engine_options(args, args.engine))
    if args.json:
        sys.stdout.write(json.dumps(conf, indent=1) + "\n")
        return
    flags = submit_flags(conf)
    if args.launcher:
        from cxrzoo import submit

        flags.append(submit.__file__)
    sys.stdout.write(" \\\n".join(flags) + "\n")


def cmd_doctor(args: argparse.Namespace) -> None:
    from cxrzoo.doctor import probe_executors

    reports = probe_executors(_spark(args), args.path)
    out = stdout()
    if args.json:
        out.write(json.dumps(reports) + "\n")
    else:
        for r in reports:
            paths = ", ".join(f"{p}: {'exists' if ok else 'absent'}" for p, ok in r["paths"].items())
            out.write(f"{r['host']} pid {r['pid']}: {r['python']} (Python {r['version']}), cxrzoo {r['cxrzoo']}, "
                      f"native kernels {'ok' if r['native_kernels'] else 'MISSING'}, engines "
                      f"{', '.join(f'{n}: {s}' for n, s in r['engines'].items())}{'; ' + paths if paths else ''}\n")
    problems = [f"{r['host']} pid {r['pid']}: {p}" for r in reports for p in r["problems"]]
    if problems:
        log.error("%d problem(s) on the executors: %s", len(problems), "; ".join(problems[:5]))
        raise SystemExit(1)


def cmd_pack(args: argparse.Namespace) -> None:
    from cxrzoo.pack import pack

    done = pack(args.out, engines=args.engine, with_spark_jars=args.with_spark_jars,
                compress_level=args.compress_level)
    m = done.manifest
    engines = ", ".join(m["engines"]) or "none"
    stdout().write(f"{done.path}: {done.bytes / 1e6:.0f} MB, {done.files} files; engines: {engines}; "
                   f"nodes need Python {m['python']['version']} at {m['python']['base_executable']} and Spark "
                   f"{m['spark']['pyspark']}\n")


def cmd_synth(args: argparse.Namespace) -> None:
    from cxrzoo.synth import write_dataset
    from cxrzoo.synth.formats import write_chexpert, write_mimic

    if args.format != "nih":
        write = write_chexpert if args.format == "chexpert" else write_mimic
        f = write(args.out, n=args.n, size=args.size, seed=args.seed, workers=args.workers)
        log.info("wrote %d images (%d², %s layout) in %.1fs under %s\n%s", f.n, args.size, args.format, f.seconds,
                 f.root, "\n".join(f"{k}: {v}" for k, v in f.csvs.items()))
        return
    r = write_dataset(args.out, n=args.n, size=args.size, seed=args.seed, workers=args.workers)
    log.info("wrote %d images (%d²) in %.1fs\nimages: %s\nlabels: %s\nboxes:  %s\nsplits: %s, %s", r.n, args.size,
             r.seconds, r.images, r.labels_csv, r.bbox_csv, r.train_val_list, r.test_list)


def cmd_ingest(args: argparse.Namespace) -> None:
    from cxrzoo import jobs

    rep = jobs.ingest(_spark(args), args.images, args.labels, args.out, size=args.size, split=args.split,
                      voi=args.voi, source=args.source, metadata=args.metadata, policy=args.policy,
                      unmentioned=args.unmentioned, split_name=args.split_name)
    log.info("ingest to %s: %s", args.out, rep.summary())


def cmd_train(args: argparse.Namespace) -> None:
    from cxrzoo import jobs
    from cxrzoo.cli_inputs import check_inputs
    from cxrzoo.cli_parser import option_values
    from cxrzoo.progress import EpochProgress
    from cxrzoo.train import CXREstimator
    from cxrzoo.train.options import training_options

    params = {**option_values(args, training_options()), "normalization": args.normalization}

    # refuse a plan that cannot finish before Spark starts (e.g. --plateau-monitor val_loss without --validation),
    # then input paths that cannot be read
    est = CXREstimator(**{k: v for k, v in params.items() if v is not None})
    est.check_plan(bool(args.validation))
    check_inputs(args)
    progress = EpochProgress(est.getEpochs()).attached() if not args.no_progress else contextlib.nullcontext()
    with progress:
        jobs.train(_spark(args, est.getEngine()), args.data, args.out, validation=args.validation, crop=args.crop,
                   **params)
    log.info("model saved to %s", args.out)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from cxrzoo import jobs

    with fd_stdout_to_stderr() if args.json else contextlib.nullcontext():
        rep = jobs.evaluate(_spark(args, jobs.model_engine(args.model)), args.model, args.data,
                            bootstrap=args.bootstrap)
    if args.json:
        stdout().write(json.dumps(rep.as_dict()) + "\n")
    else:
        stdout().write(rep.table() + "\n")


def cmd_export(args: argparse.Namespace) -> None:
    from cxrzoo import jobs

    out = jobs.export(args.model, args.out, precision=args.precision, calibration=args.calibration,
                      check=args.check)
    log.info("OpenVINO IR (%s) written to %s", args.precision, out)


def cmd_score(args: argparse.Namespace) -> None:
    from cxrzoo import jobs

    n = jobs.score(_spark(args), args.model, args.out, images=args.images, data=args.data,
                   batch_size=args.batch_size, precision=args.precision_hint, heatmaps=args.heatmaps,
                   voi=args.voi)
    log.info("scored %d images to %s", n, args.out)


def cmd_predict(args: argparse.Namespace) -> None:
    from pathlib import Path

    from cxrzoo.predict import findings_table, predict_files
    from cxrzoo.score import read_card

    if not Path(args.model).is_dir():
        raise PathNotFoundError(f"no exported model at {args.model}: give --model IR_DIR (`cxrzoo export` writes "
                                "one; `make demo` leaves demo-out/ir)")
    thresholds = read_card(args.model).get("thresholds") or {}
    if not thresholds:
        log.warning("%s has no operating thresholds (trained without validation): no findings", args.model)
    preds = predict_files(args.images, args.model, args.heatmaps)
    out = stdout()
    for p in preds:
        out.write(findings_table(p, thresholds) + "\n")
    failed = [p for p in preds if p.error]
    if failed:
        log.warning("%d of %d files could not be scored", len(failed), len(preds))
    if failed and len(failed) == len(preds):
        raise SystemExit(2)


def cmd_report(args: argparse.Namespace) -> None:
    from cxrzoo import jobs
    from cxrzoo.report import write_report

    out = write_report(_spark(args, jobs.model_engine(args.model)), args.model, args.data, args.out,
                       boxes=args.boxes, image_side=args.image_side, bootstrap=args.bootstrap)
    log.info("report written to %s", out)


def cmd_demo(args: argparse.Namespace) -> None:
    from cxrzoo.demo import run_demo

    run_demo(args.out, n=args.n, epochs=args.epochs, seed=args.seed, master=args.master, engine=args.engine)


def cmd_bench(args: argparse.Namespace) -> None:
    import subprocess
    from pathlib import Path

    here = Path(__file__).resolve().parents[1] / "benchmarks"
    script = here / (f"{args.which}.py" if args.which == "soak" else f"bench_{args.which}.py")
    if not script.exists():
        raise PathNotFoundError(f"{script} not found: benchmarks run from a source checkout of cxrzoo")
    extra = args.rest + (["--json"] if args.json else [])
    env = dict(os.environ)
    if not args.verbose:  # the benchmark's own lines on the terminal, the JVM's and the libraries' in a log file
        from cxrzoo.console import default_log_path

        env["CXRZOO_CONSOLE_LOG"] = str(args.log_file or default_log_path(f"bench-{args.which}"))
        if not args.json:
            sys.stderr.write(f"log: {env['CXRZOO_CONSOLE_LOG']}\n")
    raise SystemExit(subprocess.call([sys.executable, script.name, *extra], cwd=here, env=env))


# commands whose library output goes to a log file (they may start a JVM or OpenVINO)
_QUIET_CONSOLE = ("synth", "ingest", "train", "evaluate", "export", "score", "demo", "predict", "report", "pack",
                  "doctor")


def _log_path(args: argparse.Namespace):
    from cxrzoo.console import default_log_path

    if args.log_file:
        return args.log_file
    return default_log_path(args.command, args.out if args.command == "demo" else None)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (see :mod:`cxrzoo.cli_parser`)."""
    from cxrzoo.cli_parser import build_parser as build

    return build()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``cxrzoo`` console script.

    Commands that run Spark print only cxrzoo's progress and results; the JVM's, BigDL's and the
    libraries' output goes to a log file whose path is printed first (``--verbose`` shows it all).
    Bad input (a wrong path, an unreadable file, a bad option value, a model directory this install
    cannot read: a :class:`cxrzoo.errors.InputError`) ends with one ``error:`` line naming it and the fix, and
    exit status 2; any other failure (a :class:`cxrzoo.errors.JobFailedError`, or an error of a library) with
    one line and status 1.  The traceback goes to the log file, and with ``--verbose``
    to the terminal as well.
    """
    args = build_parser().parse_args(argv)
    if args.command not in _QUIET_CONSOLE:
        logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
        return _run(args)
    from cxrzoo.console import quiet_console

    path = _log_path(args)
    with quiet_console(path, verbose=args.verbose, quiet=args.quiet):
        if not args.verbose:
            log.info("log: %s", path)
        _run(args, log_file=str(path))


_OWN_INPUT_CHECK = ("train",)  # commands that call cli_inputs.check_inputs themselves (after checks of their own)


def _one_line(text: str) -> str:
    """``text`` on one line (its lines joined), for the terminal."""
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _run(args: argparse.Namespace, log_file: str | None = None) -> None:
    from cxrzoo.cli_inputs import check_inputs, spark_input_error

    func = globals()[f"cmd_{args.command.replace('-', '_')}"]
    try:
        if args.command not in _OWN_INPUT_CHECK:
            check_inputs(args)
        func(args)
    except KeyboardInterrupt:
        log.error("interrupted")
        raise SystemExit(130) from None
    except Exception as e:  # noqa: BLE001 - one line on the terminal, the traceback in the log file
        if log_file is not None or args.verbose:  # to the log file; on the terminal only with --verbose
            logging.getLogger("traceback").error("cxrzoo %s failed", args.command, exc_info=True)
        spark_line = spark_input_error(e, args)  # Spark's error for an input path, told as cxrzoo's
        if spark_line is not None:
            e = InputError(spark_line)
        if exit_status(e) == 2:
            log.error("%s", _one_line(str(e)) or type(e).__name__)
            raise SystemExit(2) from None
        where = f" (traceback in {log_file})" if log_file and not args.verbose else ""
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        log.error("%s: %s%s", type(e).__name__, first, where)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
