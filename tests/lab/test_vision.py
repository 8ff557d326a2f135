"""The CNN experiments' data generators and measurement code: exact shifts, the receptive-field calculator
against hand-computed values, the two-marks images, training-error curves, and each verdict rule on
made-up records."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from archzoo.lab import EXPERIMENTS
from archzoo.lab.base import Cell, CellResult
from archzoo.lab.receptive_field import DISTANCES, MARK, SHAPES, LocalCNN, blind, fits, two_marks
from archzoo.lab.vision import DIRECTIONS, chain_of, error_rate, receptive_field, shift_images
from archzoo.models import create_model


def records(rows: list[tuple[dict, int, dict]]) -> list[CellResult]:
    return [CellResult(Cell(config, seed), result, 1.0) for config, seed, result in rows]


# -- shifts -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("dy", "dx"), [(0, 0), (3, 0), (0, -5), (-2, 7), (8, 8), (-8, -1)])
def test_shifted_images_are_exact_shifts(dy: int, dx: int) -> None:
    x = torch.rand(3, 2, 28, 28) + 1.0  # no pixel equals the fill
    out = shift_images(x, dy, dx, fill=-0.5)
    for i in range(28):
        for j in range(28):
            si, sj = i - dy, j - dx
            expected = x[:, :, si, sj] if 0 <= si < 28 and 0 <= sj < 28 else torch.full((3, 2), -0.5)
            assert torch.equal(out[:, :, i, j], expected)
    assert int((out == -0.5).sum()) == 3 * 2 * (28 * 28 - (28 - abs(dy)) * (28 - abs(dx)))


def test_a_shift_and_its_inverse_restore_the_uncut_middle() -> None:
    x = torch.rand(2, 1, 28, 28)
    back = shift_images(shift_images(x, 4, -3, 0.0), -4, 3, 0.0)
    assert torch.equal(back[:, :, 4:24, 3:25], x[:, :, 4:24, 3:25])
    assert len(set(DIRECTIONS)) == 8 and all(max(abs(a), abs(b)) == 1 for a, b in DIRECTIONS)


# -- receptive fields -------------------------------------------------------------------------------

def test_receptive_field_of_lenet5_by_hand() -> None:
    # C1 5x5 -> 5; S2 2x2/2 -> 5 + 1 = 6, jump 2; C3 5x5 -> 6 + 4*2 = 14; S4 2x2/2 -> 14 + 1*2 = 16, jump 4
    chain = chain_of(create_model("lenet5"))
    assert chain == [(5, 1, 1), (2, 2, 1), (5, 1, 1), (2, 2, 1)]
    assert [receptive_field(chain[:k]).size for k in range(1, 5)] == [5, 6, 14, 16]
    assert receptive_field(chain).jump == 4


def test_receptive_field_of_a_resnet_stage_by_hand() -> None:
    model = create_model("resnet20")
    stem = chain_of(model.stem)
    stage0 = chain_of(model.stages[0])
    stage1 = chain_of(model.stages[1])
    assert stem == [(3, 1, 1)] and stage0 == [(3, 1, 1)] * 6
    # the stem's 3x3 sees 3 pixels; each of stage 0's six 3x3 convolutions (stride 1) adds 2
    assert receptive_field(stem + stage0) == receptive_field([(3, 1, 1)] * 7)
    assert receptive_field(stem + stage0).size == 15
    # stage 1 starts with a stride-2 conv (+2, jump 2), then five 3x3 convs at jump 2 add 4 each: 15 + 2 + 20
    assert stage1[0] == (3, 2, 1) and receptive_field(stem + stage0 + stage1) .size == 37
    assert receptive_field(stem + stage0 + stage1).jump == 2


def test_dilation_and_a_skipped_shortcut() -> None:
    assert receptive_field([(3, 1, 2), (3, 1, 4)]).size == 1 + 2 * 2 + 2 * 4
    net = nn.Sequential(nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 1, stride=2))
    assert chain_of(net, skip=lambda name: name == "1") == [(3, 1, 1)]
    assert [LocalCNN(d).field() for d in (1, 3, 8)] == [3, 7, 17]


def test_the_local_cnn_output_depends_only_on_what_one_field_sees() -> None:
    """Moving a mark farther than the field from another changes nothing a single logit position combines:
    the per-position logits of an image with both marks equal those of each mark alone, position by position,
    outside the field's overlap."""
    torch.manual_seed(0)
    model = LocalCNN(2)  # field 5
    one = torch.zeros(1, 1, 7, 40)
    one[0, 0, 2:5, 2:5] = SHAPES[0]
    two = one.clone()
    two[0, 0, 2:5, 30:33] = SHAPES[1]
    with torch.no_grad():
        a, b = model.logits(model.features(one)), model.logits(model.features(two))
    assert torch.allclose(a[..., :20], b[..., :20])  # columns more than a field away from the second mark


# -- the two-marks images ---------------------------------------------------------------------------

def shape_index(patch: torch.Tensor) -> int:
    matches = [k for k in range(len(SHAPES)) if torch.equal(SHAPES[k], patch)]
    assert len(matches) == 1
    return matches[0]


def test_two_marks_places_two_shapes_at_the_distance_and_labels_same_shape() -> None:
    # every shape is distinct, has five lit pixels and fills its 3x3 box (a lit pixel in each edge row and column)
    assert len({tuple(s.flatten().tolist()) for s in SHAPES}) == len(SHAPES)
    assert all(s.sum() == 5 and s[0].any() and s[-1].any() and s[:, 0].any() and s[:, -1].any() for s in SHAPES)
    x, y, d = two_marks(400, DISTANCES, torch.Generator().manual_seed(0))
    assert x.shape == (400, 1, 7, 40) and set(d.tolist()) <= set(DISTANCES)
    assert 0.4 < y.float().mean() < 0.6
    for img, label, dist in zip(x[:, 0], y, d, strict=True):
        top, left = int(img.sum(1).nonzero().min()), int(img.sum(0).nonzero().min())
        first = img[top:top + MARK, left:left + MARK]
        second = img[top:top + MARK, left + dist:left + dist + MARK]
        assert img.sum() == 10 and first.sum() == 5 and second.sum() == 5
        assert (shape_index(first) == shape_index(second)) == bool(label)


def test_fit_and_blind_distances() -> None:
    assert fits(4, 7) and not fits(5, 7)
    assert blind(9, 7) and not blind(8, 7)  # marks 8 apart: nearest pixels 6 apart, a field of 7 covers one of each


# -- verdict rules on made-up records ---------------------------------------------------------------

def receptive_records(fit_acc: float, blind_acc: float) -> list[CellResult]:
    rows = []
    for depth in (1, 3, 8):
        field = 2 * depth + 1
        acc = {str(d): fit_acc if fits(d, field) else (blind_acc if blind(d, field) else 0.8) for d in DISTANCES}
        rows.append(({"depth": depth, "steps": 1, "test_size": 1}, 0, {"field": field, "parameters": 10,
                                                                      "accuracy": acc, "train_seconds": 1.0,
                                                                      "final_loss": 0.1}))
    return records(rows)


@pytest.mark.parametrize(("fit_acc", "blind_acc", "outcome"), [
    (0.97, 0.62, "supported"), (0.97, 0.95, "refuted"), (0.80, 0.62, "depends"), (0.97, 0.80, "depends")])
def test_receptive_field_rule(fit_acc: float, blind_acc: float, outcome: str) -> None:
    (verdict,) = EXPERIMENTS.get("receptive-field").decide(receptive_records(fit_acc, blind_acc))
    assert verdict.outcome == outcome


def weight_records(cnn_acc: dict[int, float], mlp_acc: dict[int, float]) -> list[CellResult]:
    from archzoo.lab.weight_sharing import parameters

    rows = []
    for dataset in ("mnist", "fashion-mnist"):
        for family, accs in (("cnn", cnn_acc), ("mlp", mlp_acc)):
            for width, acc in accs.items():
                rows.append(({"dataset": dataset, "family": family, "width": width, "steps": 1}, 0,
                             {"test_accuracy": acc, "parameters": parameters(family, width), "train_seconds": 1.0}))
    return records(rows)


@pytest.mark.parametrize(("cnn", "mlp", "outcome"), [
    ({2: 0.90, 4: 0.97, 8: 0.98}, {8: 0.85, 128: 0.95, 2048: 0.978}, "supported"),  # MLP needs 2048 vs CNN 8
    ({2: 0.90, 4: 0.93, 8: 0.95}, {8: 0.95, 128: 0.95, 2048: 0.95}, "refuted"),  # the smallest MLP is as good
    ({2: 0.90, 4: 0.93, 8: 0.98}, {8: 0.85, 128: 0.98, 2048: 0.98}, "depends"),  # 102k vs 27k: 3.8x
])
def test_weight_sharing_rule(cnn: dict, mlp: dict, outcome: str) -> None:
    (verdict,) = EXPERIMENTS.get("weight-sharing").decide(weight_records(cnn, mlp))
    assert verdict.outcome == outcome


def translation_records(retention: dict[str, float]) -> list[CellResult]:
    rows = []
    for model, keep in retention.items():
        for augment in ("none", "shift"):
            curve = [0.98 * (1 - (1 - keep) * d / 4) for d in range(9)]
            rows.append(({"model": model, "augment": augment, "steps": 1, "test_images": 1}, 0,
                         {"accuracy_by_shift": curve, "test_accuracy": 0.98}))
    return records(rows)


@pytest.mark.parametrize(("retention", "outcome"), [
    ({"cnn-gap": 0.95, "cnn-flatten": 0.92, "mlp": 0.4}, "supported"),
    ({"cnn-gap": 0.45, "cnn-flatten": 0.42, "mlp": 0.4}, "refuted"),
    ({"cnn-gap": 0.95, "cnn-flatten": 0.60, "mlp": 0.4}, "depends"),
])
def test_translation_rule_reads_retention_at_four_pixels(retention: dict, outcome: str) -> None:
    (verdict,) = EXPERIMENTS.get("translation-invariance").decide(translation_records(retention))
    assert verdict.outcome == outcome


def test_error_rate_counts_mistakes_and_keeps_the_mode() -> None:
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
        model.bias.zero_()
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 1, 1, 1])
    model.train()
    assert error_rate(model, x, y, batch_size=3) == 0.25 and model.training


def test_simple_cnn_and_mlp_variants_of_the_lab() -> None:
    base = create_model("simple_cnn")
    assert list(base.state_dict()) == ["features.0.weight", "features.0.bias", "features.3.weight", "features.3.bias",
                                       "classifier.1.weight", "classifier.1.bias", "classifier.4.weight",
                                       "classifier.4.bias"]  # the default model's layout (old checkpoints) is kept
    x = torch.rand(3, 1, 28, 28)
    for args in ({"activation": "sigmoid"}, {"activation": "tanh", "batch_norm": True}, {"head": "global_avg"}):
        assert create_model("simple_cnn", **args)(x).shape == (3, 10)
    bn = create_model("simple_cnn", batch_norm=True)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in bn.modules()) == 2 and bn.features[0].bias is None
    gap = create_model("simple_cnn", head="global_avg").eval()
    # the global-average head sees no position: a feature map moved around (circularly) gives the same logits
    with torch.no_grad():
        feats = gap.features(x)
        assert torch.allclose(gap.classifier(feats), gap.classifier(feats.roll((2, 3), dims=(2, 3))), atol=1e-6)
    assert sum(isinstance(m, nn.Tanh) for m in create_model("mlp", activation="tanh").modules()) == 2
    from archzoo.errors import UserError

    with pytest.raises(UserError, match="activation"):
        create_model("mlp", activation="gelu")
    with pytest.raises(UserError, match="head"):
        create_model("simple_cnn", head="flatten2")


def activation_records(steps: dict[tuple[str, str], int | None], budget: int = 400) -> list[CellResult]:
    rows = []
    for (net, act), reached in steps.items():
        curve = [{"step": 1, "seconds": 0.0, "train_error": 0.9, "test_error": 0.9},
                 {"step": reached or budget, "seconds": 1.0, "train_error": 0.1 if reached else 0.5, "test_error": 0.5}]
        rows.append(({"network": net, "activation": act, "lr": 0.05, "budget": budget}, 0,
                     {"curve": curve, "steps": reached, "seconds": 1.0 if reached else None,
                      "gradient_norms": [1.0, 0.5], "test_accuracy": 0.8}))
    return records(rows)


@pytest.mark.parametrize(("relu", "tanh", "outcome"), [
    (40, 200, "supported"),  # 5x
    (40, None, "supported"),  # tanh never gets there in 400 steps: at least 10x
    (100, 80, "refuted"),
    (40, 60, "depends"),
    (None, None, "depends"),  # ReLU misses the level: no ratio
])
def test_activations_rule(relu: int | None, tanh: int | None, outcome: str) -> None:
    steps = {(net, act): v for net in ("cnn", "mlp") for act, v in (("relu", relu), ("tanh", tanh), ("sigmoid", None))}
    (verdict,) = EXPERIMENTS.get("activations").decide(activation_records(steps))
    assert verdict.outcome == outcome


def test_activations_count_a_diverged_run_as_never_reaching_the_level() -> None:
    """A rate at which the Trainer stopped on a non-finite loss (no test accuracy) loses to a rate that got
    there; where every rate diverged the table says so instead of failing."""
    steps = {(net, act): 40 for net in ("cnn", "mlp") for act in ("relu", "tanh", "sigmoid")}
    rows = activation_records(steps)
    curve = [{"step": 1, "seconds": 0.0, "train_error": 0.9, "test_error": 0.9}]
    rows += records([({"network": "mlp", "activation": act, "lr": 0.2, "budget": 400}, 0,
                      {"curve": curve, "steps": None, "seconds": None, "gradient_norms": [1.0, 0.5],
                       "test_accuracy": None, "diverged": True}) for act in ("relu", "sigmoid")])
    experiment = EXPERIMENTS.get("activations")
    (verdict,) = experiment.decide(rows)
    assert verdict.outcome == "refuted"  # tanh 40 = ReLU 40 in both networks: the diverged rate did not count
    table = {(r[0], r[1]): r for r in experiment.tables(rows)[0].rows}
    mlp = [k for k in table if k[0].startswith("deep MLP")]
    assert len(mlp) == 3 and all(table[k][-1] == ("1 of 2" if k[1] != "tanh" else "0 of 1") for k in mlp)
    all_diverged = records([({"network": n, "activation": a, "lr": 0.2, "budget": 400}, 0,
                             {"curve": curve, "steps": None, "seconds": None, "gradient_norms": [1.0, 0.5],
                              "test_accuracy": None, "diverged": True}) for n in ("cnn", "mlp")
                            for a in ("relu", "tanh", "sigmoid")])
    assert all(row[-2] == "diverged" for row in experiment.tables(all_diverged)[0].rows)


def test_steps_to_reads_the_first_probe_at_the_level() -> None:
    from archzoo.lab.activations import steps_to

    points = [{"step": 1, "seconds": 0.0, "train_error": 0.9}, {"step": 20, "seconds": 2.0, "train_error": 0.2},
              {"step": 40, "seconds": 4.0, "train_error": 0.14}, {"step": 60, "seconds": 6.0, "train_error": 0.1}]
    assert steps_to(points, 0.15) == 40 and steps_to(points, 0.15, "seconds") == 4.0 and steps_to(points, 0.05) is None


def depth_records(train_error: dict[str, float]) -> list[CellResult]:
    return records([({"model": m, "steps": 1, "batch": 1, "probe_every": 1, "probe_images": 1}, 0,
                     {"curve": [{"step": 1, "seconds": 0.0, "train_error": 0.9, "test_error": 0.9},
                                {"step": 2, "seconds": 1.0, "train_error": e, "test_error": e + 0.02}],
                      "test_accuracy": 1 - e, "train_seconds": 1.0}) for m, e in train_error.items()])


@pytest.mark.parametrize(("errors", "outcomes"), [
    ({"plain20": 0.10, "plain56": 0.15, "resnet20": 0.09, "resnet56": 0.08}, ("supported", "supported")),
    ({"plain20": 0.15, "plain56": 0.10, "resnet20": 0.09, "resnet56": 0.12}, ("refuted", "refuted")),
    ({"plain20": 0.10, "plain56": 0.105, "resnet20": 0.05, "resnet56": 0.09}, ("depends", "depends")),
])
def test_depth_rules_read_the_final_training_error(errors: dict, outcomes: tuple) -> None:
    verdicts = EXPERIMENTS.get("depth-and-residuals").decide(depth_records(errors))
    assert tuple(v.outcome for v in verdicts) == outcomes


def test_depth_names_the_precision_each_network_trained_in() -> None:
    exp = EXPERIMENTS.get("depth-and-residuals")
    assert {c.config["precision"] for c in exp.cells(False, [0])} == {"auto"}  # never emulated bf16 on AVX2
    results = depth_records({"plain20": 0.1, "plain56": 0.15, "resnet20": 0.09, "resnet56": 0.08})
    results[0].config["precision"] = "bf16"  # a cell from before results recorded it: what the cell named
    results[1].result["precision"] = "fp32"  # what auto resolved to
    results[2].config["precision"] = "auto"  # auto with nothing recorded: unknown
    (table,) = exp.tables(results)
    column = table.headers.index("precision")
    assert [row[column] for row in table.rows] == ["bf16", "fp32", "not recorded", "not recorded"]


def regularisation_records(accuracy: dict[str, list[float]]) -> list[CellResult]:
    return records([({"variant": v, "steps": 1}, seed, {"test_accuracy": a, "train_error": 0.1, "test_error": 0.12,
                                                        "gap": 0.02, "train_seconds": 1.0})
                    for v, accs in accuracy.items() for seed, a in enumerate(accs)])


def test_regularisation_rule_needs_each_removal_to_cost_more_than_the_noise() -> None:
    from archzoo.lab.regularisation import VARIANTS

    exp = EXPERIMENTS.get("regularisation")
    all_help = {v: [0.90, 0.902, 0.898] if v == "full" else [0.88, 0.88, 0.88] for v in VARIANTS}
    assert exp.decide(regularisation_records(all_help))[0].outcome == "supported"
    none_help = {v: [0.90, 0.902, 0.898] if v == "full" else [0.90, 0.905, 0.90] for v in VARIANTS}
    assert exp.decide(regularisation_records(none_help))[0].outcome == "refuted"
    noisy = {v: [0.90, 0.92, 0.88] if v == "full" else [0.89, 0.89, 0.89] for v in VARIANTS}  # 1 point < 2 std
    assert exp.decide(regularisation_records(noisy))[0].outcome == "refuted"
    some = dict(all_help, **{"no-dropout": [0.91, 0.91, 0.91]})
    verdict = exp.decide(regularisation_records(some))[0]
    assert verdict.outcome == "depends" and "dropout" in verdict.reason


def test_coverage_counts_digits_with_two_percent_of_the_samples() -> None:
    from archzoo.lab.mode_collapse import coverage

    uniform = coverage(torch.arange(1000) % 10)
    assert uniform["covered"] == 10 and abs(uniform["entropy"] - 2.302585) < 1e-5 and uniform["largest"] == 0.1
    skewed = coverage(torch.cat([torch.zeros(950, dtype=torch.long), torch.arange(50) % 5 + 1]))
    assert skewed["covered"] == 1 and skewed["largest"] == 0.95  # digits 1-5 get 1% each: not covered
    assert coverage(torch.zeros(10, dtype=torch.long))["entropy"] == 0.0


def gan_records(covered_by_run: list[list[int]]) -> list[CellResult]:
    rows = []
    for k, covered in enumerate(covered_by_run):
        curve = [{"step": 100 * (i + 1), "covered": c, "entropy": 2.0, "largest": 0.2, "shares": [0.1] * 10}
                 for i, c in enumerate(covered)]
        rows.append(({"model": ("gan_mlp", "dcgan")[k % 2], "steps": 100 * len(covered), "every": 100,
                      "channels": 32}, k // 2, {"judge_accuracy": 0.98, "curve": curve}))
    return records(rows)


@pytest.mark.parametrize(("runs", "outcome"), [
    ([[10, 3, 2], [10, 10, 10], [5, 4, 2], [10, 10, 10]], "supported"),  # 2 of 4 end collapsed
    ([[3, 10, 10, 10], [10, 10, 10, 10]], "refuted"),  # collapsed only in the first quarter
    ([[10, 5, 9, 10], [10, 10, 10, 10], [10, 10, 10, 10], [10, 10, 10, 10]], "depends"),  # comes and goes
])
def test_mode_collapse_rule(runs: list, outcome: str) -> None:
    (verdict,) = EXPERIMENTS.get("mode-collapse").decide(gan_records(runs))
    assert verdict.outcome == outcome
