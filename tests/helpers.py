"""Helpers shared by the test modules (imported as ``helpers``; pytest puts tests/ on sys.path)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Every registered model, by family. Each family's contract tests take their list from here, and the
# registry tests check that the union is exactly what is registered, so no new model slips past them.
MODEL_FAMILIES: dict[str, list[str]] = {
    "gan": ["cgan", "dcgan", "gan_mlp"],
    "image_classifier": ["lenet5", "mlp", "simple_cnn"],
    "recurrent_lm": ["gru_lm", "lstm_lm", "rnn_lm"],
}
REGISTERED_MODELS = sorted(name for names in MODEL_FAMILIES.values() for name in names)

needs_shared_data = pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="../shared/data/mnist not staged")


def small_run_overrides(**extra: object) -> list[str]:
    """Overrides for a seconds-long real-data run on the built-in MNIST subset."""
    base = {"data.dataset": "'mnist-small'", "data.val_size": 500, "train.batch_size": 64,
            "train.log_every_steps": 5, "train.precision": "'fp32'"}
    base.update({k: (repr(v) if isinstance(v, str) else v) for k, v in extra.items()})
    return [f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in base.items()]
