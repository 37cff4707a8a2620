"""The torch engine's training options (rows of :mod:`cxrzoo.train.options`); imports nothing of torch."""
from __future__ import annotations

from pyspark.ml.param import TypeConverters

from cxrzoo.params import Option, _one_of

OPTIONS = (
    Option("precision", "auto", "torch engine: 'fp32', 'bf16' (autocast; weights and optimizer stay fp32) or "
           "'auto' (bf16 where the CPU has AMX or AVX512_BF16)", _one_of("precision", {"fp32", "bf16", "auto"}),
           "--precision", choices=("auto", "fp32", "bf16"), owner="torch"),
    Option("torchCompile", False, "torch engine: run the network through torch.compile",
           TypeConverters.toBoolean, "--torch-compile", kind=bool, owner="torch"),
    Option("torchWorkers", "per_core", "torch engine: 'per_core' (one single-threaded DDP process per executor "
           "core) or 'per_executor' (one process per executor, a thread per core)",
           _one_of("torchWorkers", {"per_core", "per_executor"}), "--torch-workers",
           choices=("per_core", "per_executor"), owner="torch"),
)
