"""C kernels shipped as source inside the package, built once with the system's C compiler and called
through ctypes.

Why: where a hot loop is a chain of many tiny kernels (GPT's batch-1 decode step: dozens of calls per
token, each a few microseconds of Python and dispatch), one C call doing the same arithmetic removes
the overhead that torch.compile does not (its inductor calls MKL's matrix-vector products, slow at
M = 1 here). The library is built with ``-O3 -march=native`` into ``$XDG_CACHE_HOME/archzoo/native``
(``~/.cache`` by default), keyed by the source, the compiler and this CPU's flags, and written
atomically; later processes load it in milliseconds. Without a compiler, when the build fails, or with
``ARCHZOO_NATIVE=0``, ``native_library`` returns None and the caller keeps its numpy/torch path.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = ("-O3", "-march=native", "-fPIC", "-shared", "-std=gnu11")


def native_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "archzoo" / "native"


def _cpu_flags() -> str:
    """This CPU's feature flags (a library built with -march=native runs only where they match)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
def native_library(source: Path) -> ctypes.CDLL | None:
    """The shared library built from the C file ``source``, or None where it cannot be built here."""
    if os.environ.get("ARCHZOO_NATIVE", "1") == "0":
        return None
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        return None
    text = source.read_bytes()
    key = hashlib.sha256(b"\0".join([text, compiler.encode(), " ".join(FLAGS).encode(), _cpu_flags().encode(),
                                     platform.machine().encode()])).hexdigest()[:16]
    library = native_cache_dir() / f"{source.stem}-{key}.so"
    if not library.exists():
        try:
            library.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=library.parent) as tmp:
                built = Path(tmp) / library.name
                done = subprocess.run([compiler, *FLAGS, "-o", str(built), str(source), "-lm"],
                                      capture_output=True, text=True, timeout=120)
                if done.returncode != 0:
                    first = (done.stderr.strip().splitlines() or ["no output"])[0]
                    print(f"notice: building {source.name} failed ({first}); using the slower Python path",
                          file=sys.stderr, flush=True)
                    return None
                os.replace(built, library)  # atomic: a concurrent process sees the old state or a whole library
        except (OSError, subprocess.SubprocessError) as error:
            print(f"notice: cannot build {source.name} ({error}); using the slower Python path", file=sys.stderr,
                  flush=True)
            return None
    try:
        return ctypes.CDLL(str(library))
    except OSError:
        return None
