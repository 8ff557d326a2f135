"""`archzoo --help` and every subcommand's parser stay instant: building them imports no torch (each
subcommand imports what it needs inside its run function)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_building_the_parser_imports_no_torch() -> None:
    code = ("import sys; from archzoo.cli.main import build_parser; build_parser(); "
            "heavy = sorted(m for m in ('torch', 'numpy', 'matplotlib') if m in sys.modules); print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(REPO / "src"), "PATH": ""}, check=True).stdout
    assert out.strip() == "[]"
