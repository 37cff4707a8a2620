"""The console: library and JVM output to the log file, cxrzoo's lines and bars to the terminal, results to stdout."""
from __future__ import annotations

import io
import subprocess
import sys
import textwrap

from cxrzoo.console import Terminal


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_line_printed_under_a_bar_goes_above_it_and_the_bar_is_redrawn():
    out = _Tty()
    term = Terminal(out)
    term.bar("[##--] 1/2")
    term.line("epoch 1 done")
    term.end_bar("[####] 2/2")
    assert out.getvalue() == "\r\033[K[##--] 1/2" + "\r\033[Kepoch 1 done\n[##--] 1/2" + "\r\033[K[####] 2/2\n"


def test_off_a_terminal_only_lines_and_the_final_bar_are_written():
    out = io.StringIO()
    term = Terminal(out)
    term.bar("[##--] 1/2")
    term.line("epoch 1 done")
    term.end_bar("[####] 2/2")
    assert out.getvalue() == "epoch 1 done\n[####] 2/2\n"


def test_quiet_console_sends_library_and_child_output_to_the_log_file(tmp_path):
    log = tmp_path / "logs" / "run.log"
    script = textwrap.dedent(f"""
        import logging, os, subprocess, sys
        from cxrzoo.console import quiet_console, stdout
        with quiet_console({str(log)!r}):
            print("creating: createSpatialConvolution")          # a library's print
            os.write(2, b"26/12/01 WARN SparkContext: noise\\n")   # the JVM's stderr
            subprocess.run([sys.executable, "-c", "print('worker chatter')"])  # a child process
            logging.getLogger("py4j.clientserver").warning("py4j noise")
            logging.getLogger("cxrzoo.demo").info("1/7 synth (2.0s)")
            logging.getLogger("cxrzoo.demo").warning("3 images could not be decoded")
            stdout().write("RESULT TABLE\\n")
        print("after: back on stdout")
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "RESULT TABLE\nafter: back on stdout\n"
    assert run.stderr == "1/7 synth (2.0s)\nwarning: 3 images could not be decoded\n"
    text = log.read_text()
    for noise in ("creating: createSpatialConvolution", "WARN SparkContext: noise", "worker chatter", "py4j noise"):
        assert noise in text
    assert "cxrzoo.demo: 1/7 synth" in text  # cxrzoo's own records are in the log too


def test_verbose_leaves_everything_on_the_terminal(tmp_path):
    script = textwrap.dedent(f"""
        import logging, os
        from cxrzoo.console import quiet_console
        with quiet_console({str(tmp_path / 'v.log')!r}, verbose=True):
            os.write(2, b"JVM line\\n")
            logging.getLogger("py4j").warning("library warning")
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert "JVM line" in run.stderr and "library warning" in run.stderr


def test_spark_progress_counts_the_tasks_of_the_block_and_restores_the_job_group(spark):
    from cxrzoo.progress import SparkProgress

    sc = spark.sparkContext
    sc.setLocalProperty("spark.jobGroup.id", "users-own")
    out = io.StringIO()
    try:
        with SparkProgress(spark, "count", interval=0.05, stream=out):
            assert sc.parallelize(range(1000), 7).map(lambda x: x * 2).sum() == 999000
        spark.range(10).count()  # outside the block: not counted
        assert sc.getLocalProperty("spark.jobGroup.id") == "users-own"
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    line = out.getvalue().strip().splitlines()[-1]
    assert line.startswith("count: 7/7 Spark tasks in "), out.getvalue()
