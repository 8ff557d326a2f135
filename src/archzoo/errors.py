"""The one error type users see, and the helper that suggests close matches."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A problem the user can fix; the CLI prints its message on one line and exits non-zero.

    The message names the problem and the fix. Anything else that escapes is a bug.
    """


class TrainingDiverged(UserError):
    """The loss turned non-finite and the trainer stopped; experiments that expect some runs to diverge
    (learning-rate sweeps, clipping) catch this type and record the run as diverged."""


def close_matches(name: str, choices: Iterable[str], n: int = 3) -> str:
    """Return ' (did you mean: a, b?)' for the nearest of ``choices`` to ``name``, or ''."""
    found = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.5)
    return f" (did you mean: {', '.join(found)}?)" if found else ""


def unknown(kind: str, name: str, choices: Iterable[str]) -> UserError:
    """A uniform 'unknown X' error listing close matches and where to see all of them."""
    choices = sorted(choices)
    hint = close_matches(name, choices) or f" (known: {', '.join(choices[:12])}{' ...' if len(choices) > 12 else ''})"
    return UserError(f"unknown {kind} {name!r}{hint}")
