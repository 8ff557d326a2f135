"""Named benchmarks: each measures one figure on the real test split and returns a result record
(see ``benchmarks/base.py``). Importing this package imports every benchmark module; the list is explicit."""

from archzoo.benchmarks import (  # noqa: F401  (register the benchmarks)
    cnn,
    compile,
    forecast,
    gan,
    generation,
    gpt,
    hopfield,
    inference,
    lm,
    mnist,
    sentence,
    speech,
    translation,
)
from archzoo.benchmarks.base import BENCHMARKS, Benchmark, machine, register_benchmark, run_benchmark

__all__ = ["BENCHMARKS", "Benchmark", "machine", "register_benchmark", "run_benchmark"]
