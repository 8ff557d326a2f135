"""Tasks own the loss, metrics, decoding and reports of a job; models only compute outputs."""

from archzoo.tasks import (  # noqa: E402,F401  (register the tasks)
    associative_memory,
    classification,
    connected_digits,
    forecasting,
    generation,
    language_model,
    masked_lm,
    sentence_classification,
    sequence,
    speech,
    translation,
)
from archzoo.tasks.base import TASKS, Task

__all__ = ["TASKS", "Task"]
