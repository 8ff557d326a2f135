"""The claims lab: the articles' claims (sequence models, CNNs, training techniques) as experiments with computed verdicts.

``archzoo lab list | run NAME | all | report DIR`` (cli/lab.py). Each experiment module registers
itself with ``@register_experiment`` (lab/base.py); this package imports them explicitly.
"""

from archzoo.lab import (  # noqa: F401  (register the experiments)
    activations,
    articles_code,
    attention_length,
    charlm,
    clipping,
    context,
    depth,
    exposure,
    gpu_speedup,
    gradients,
    long_range,
    mode_collapse,
    params,
    pretraining,
    receptive_field,
    regularisation,
    speed,
    translation,
    weight_sharing,
)
from archzoo.lab.base import EXPERIMENTS, Experiment, register_experiment

__all__ = ["EXPERIMENTS", "Experiment", "register_experiment"]
