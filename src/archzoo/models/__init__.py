"""Models: one module per family, each registering its named variants at the bottom.

Importing this package imports every family (the list below is explicit, STYLE.md convention 3), so
the registry is complete; the registry itself lives in ``models/registry.py``, which imports no family.
"""

from archzoo.models import (  # noqa: F401  (register the families)
    alexnet,
    bert,
    cnn,
    densenet,
    forecast,
    gan,
    googlenet,
    gpt,
    hopfield,
    mlp,
    resnet,
    rnn_lm,
    sentence,
    seq2seq,
    sequence,
    speech,
    vgg,
)
from archzoo.models.registry import (
    MAX_PARAMETERS,
    MODELS,
    ModelConfig,
    build_model,
    check_model_args,
    create_model,
    list_models,
    max_parameters,
    model_arg_types,
    register_model,
)

__all__ = ["MAX_PARAMETERS", "MODELS", "ModelConfig", "build_model", "check_model_args", "create_model", "list_models",
           "max_parameters", "model_arg_types", "register_model"]
