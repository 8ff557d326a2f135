"""Tasks own the loss, metrics, decoding and reports of a job; models only compute outputs."""

from archzoo.tasks import classification, generation, language_model  # noqa: E402,F401  (register the tasks)
from archzoo.tasks.base import TASKS, Task

__all__ = ["TASKS", "Task"]
