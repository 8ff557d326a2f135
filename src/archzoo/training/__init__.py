"""The one trainer for every task, with its optimisers, schedules, checkpoints and distribution."""
