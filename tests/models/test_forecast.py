"""Contract of the forecasters (models/forecast.py): shapes, gradients, save/load, strict state_dict,
reference = fused paths, exact baselines, and every neural forecaster overfitting a tiny real batch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from archzoo.errors import UserError
from archzoo.layers.impl import use_impl
from archzoo.models import create_model, list_models
from archzoo.models.forecast import Forecaster, moving_average
from helpers import MODEL_FAMILIES, SHARED_DATA

FORECASTERS = MODEL_FAMILIES["forecaster"]
BASELINES = {"naive_last", "seasonal_naive"}
NEURAL = [n for n in FORECASTERS if n not in BASELINES]
SMALL = {"seq_len": 48, "horizon": 20, "num_channels": 3}
EXTRA = {"rnn_forecaster": {"hidden_size": 16, "patch_len": 12}, "lstm_forecaster": {"hidden_size": 16, "patch_len": 12},
         "gru_forecaster": {"hidden_size": 16, "patch_len": 12},
         "transformer_forecaster": {"d_model": 16, "num_heads": 2, "dim_feedforward": 32, "patch_len": 8},
         "seasonal_naive": {"period": 24}}
AUTOREGRESSIVE = [(n, {"decoder": "autoregressive"}) for n in ("rnn_forecaster", "lstm_forecaster", "gru_forecaster")]
CASES = [(n, {}) for n in FORECASTERS] + AUTOREGRESSIVE
IDS = [n + ("-ar" if kw else "") for n, kw in CASES]


def small(name: str, **kwargs: object) -> torch.nn.Module:
    return create_model(name, **{**SMALL, **EXTRA.get(name, {}), **kwargs})


def test_the_family_is_every_registered_forecaster() -> None:
    found = [n for n in list_models() if isinstance(create_model(n), Forecaster)]
    assert found == FORECASTERS


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=IDS)
def test_output_shapes_and_finite(name: str, kwargs: dict) -> None:
    model = small(name, **kwargs).eval()
    for batch_size in (1, 3):
        (x,) = model.example_inputs(batch_size)
        assert x.shape == (batch_size, 48, 3)
        with torch.no_grad():
            y = model(x)
        assert y.shape == (batch_size, 20, 3) and torch.isfinite(y).all()
    default = create_model(name, **kwargs).eval()  # ETTh1's shape: look-back 96, horizon 96, 7 variables
    with torch.no_grad():
        assert default(*default.example_inputs(2)).shape == (2, 96, 7)
    with pytest.raises(UserError, match=r"expects windows of shape \(B, 48, 3\)") as excinfo:
        model(torch.randn(2, 47, 3))
    assert "\n" not in str(excinfo.value)


@pytest.mark.parametrize("name", ["rnn_forecaster", "lstm_forecaster", "gru_forecaster", "transformer_forecaster", "linear"])
def test_reference_and_fused_paths_agree(name: str) -> None:
    model = small(name).eval()
    (x,) = model.example_inputs(3)
    with torch.no_grad():
        with use_impl("reference"):
            reference = model(x)
        with use_impl("fused"):
            fused = model(x)
    torch.testing.assert_close(reference, fused, atol=1e-5, rtol=1e-5)


def test_naive_baselines_exactly() -> None:
    x = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])[None, :, None]  # (B=1, L=5, C=1)
    naive = create_model("naive_last", seq_len=5, horizon=3, num_channels=1)
    assert naive(x).flatten().tolist() == [5.0, 5.0, 5.0]
    seasonal = create_model("seasonal_naive", seq_len=5, horizon=5, num_channels=1, period=2)
    assert seasonal(x).flatten().tolist() == [4.0, 5.0, 4.0, 5.0, 4.0]
    two = torch.stack([x[0, :, 0], -x[0, :, 0]], dim=-1)[None]  # each variable repeats its own last value
    assert create_model("naive_last", seq_len=5, horizon=2, num_channels=2)(two).tolist() == [[[5.0, -5.0], [5.0, -5.0]]]
    with pytest.raises(UserError, match="period=6"):
        create_model("seasonal_naive", seq_len=5, horizon=2, num_channels=1, period=6)


def test_nlinear_with_zero_weights_is_the_naive_forecast_and_dlinear_decomposes() -> None:
    model = create_model("linear", seq_len=6, horizon=4, num_channels=2, norm="last")
    torch.nn.init.zeros_(model.linear.weight)
    torch.nn.init.zeros_(model.linear.bias)
    x = torch.randn(3, 6, 2)
    torch.testing.assert_close(model(x), x[:, -1:].expand(-1, 4, -1))
    z = torch.tensor([[1.0, 2.0, 6.0, 4.0]])
    # window 3, ends repeated: [1, 1, 2, 6, 4, 4] -> means of 3
    torch.testing.assert_close(moving_average(z, 3), torch.tensor([[4 / 3, 3.0, 4.0, 14 / 3]]))


def test_channel_independence() -> None:
    """Changing one variable's history changes only that variable's forecast."""
    model = small("gru_forecaster").eval()
    x = torch.randn(2, 48, 3)
    x2 = x.clone()
    x2[:, :, 1] += torch.randn(2, 48)
    with torch.no_grad():
        y, y2 = model(x), model(x2)
    assert torch.equal(y[:, :, [0, 2]], y2[:, :, [0, 2]]) and not torch.equal(y[:, :, 1], y2[:, :, 1])


def test_bad_options_are_one_line_errors() -> None:
    for name, kwargs, match in (("gru_forecaster", {"patch_len": 7}, "patch_len=7 must divide seq_len=48"),
                                ("lstm_forecaster", {"decoder": "beam"}, "decoder must be one of"),
                                ("linear", {"norm": "batch"}, "norm must be one of"),
                                ("transformer_forecaster", {"patch_len": 5}, "patch_len=5 must divide")):
        with pytest.raises(UserError, match=match):
            small(name, **kwargs)


@pytest.mark.skipif(not (SHARED_DATA / "ett-small").is_dir(), reason="../shared/data/ett-small not staged")
@pytest.mark.parametrize(("name", "kwargs"), [c for c in CASES if c[0] not in BASELINES],
                         ids=[i for i, c in zip(IDS, CASES, strict=True) if c[0] not in BASELINES])
def test_overfits_a_tiny_real_batch(name: str, kwargs: dict) -> None:
    """Eight ETTh1 windows (3 variables, look-back 48, horizon 20): the training MSE falls by 5x or more."""
    from archzoo.tasks.forecasting import Forecasting, ForecastingConfig

    task = Forecasting(ForecastingConfig(dataset="etth1", columns=("HUFL", "MUFL", "OT"), seq_len=48, horizon=20))
    x, y = task.windows(torch.arange(0, 8 * 500, 500))
    torch.manual_seed(0)
    dropout = {} if name == "linear" else {"dropout": 0.0}
    model = small(name, **kwargs, **dropout).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = F.mse_loss(model(x), y).item()
    for _ in range(150):
        optimizer.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
    assert loss.item() < first / 5, (first, loss.item())
