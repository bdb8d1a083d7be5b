"""The linear probe and its metrics: known answers and scikit-learn as the reference."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, top_k_accuracy_score

from s3t.config.schema import ProbeConfig
from s3t.eval.probe import (
    Probe,
    multilabel_metrics,
    single_label_metrics,
    top_k_accuracy,
    train_probe,
)
from s3t.training.schedule import warmup_cosine


def blobs(n_per_class: int, classes: int, dim: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (classes, dim))
    y = np.repeat(np.arange(classes), n_per_class)
    return (centres[y] + rng.normal(0, 0.5, (len(y), dim))).astype(np.float32), y


def test_warmup_cosine():
    assert warmup_cosine(0, 50, 5, 1.0) == 0.0
    assert warmup_cosine(2.5, 50, 5, 1.0) == pytest.approx(0.5)
    assert warmup_cosine(5, 50, 5, 1.0) == pytest.approx(1.0)
    assert warmup_cosine(27.5, 50, 5, 1.0) == pytest.approx(0.5)
    assert warmup_cosine(50, 50, 5, 1.0) == pytest.approx(0.0)


def test_probe_separates_separable_classes_and_picks_an_epoch_on_validation():
    x, y = blobs(30, 4)
    xv, yv = blobs(10, 4, seed=0)
    cfg = ProbeConfig(epochs=20, warmup_epochs=2)
    probe = train_probe(x, y, xv, yv, 4, False, cfg, batch_size=16, seed=0)
    assert (probe.scores(xv).argmax(1) == yv).mean() == 1.0
    assert len(probe.history) == 20 and 1 <= probe.epoch <= 20
    assert probe.history[probe.epoch - 1]["valid_score"] == max(h["valid_score"] for h in probe.history)
    np.testing.assert_allclose(probe.scores(xv).sum(1), 1.0, rtol=1e-5)  # softmax
    again = train_probe(x, y, xv, yv, 4, False, cfg, batch_size=16, seed=0)
    assert np.array_equal(again.weight.numpy(), probe.weight.numpy())  # seeded


def test_probe_state_round_trip():
    x, y = blobs(5, 3)
    probe = train_probe(x, y, x, y, 3, False, ProbeConfig(epochs=2, warmup_epochs=1), 8)
    back = Probe.from_state(probe.state())
    np.testing.assert_array_equal(back.scores(x), probe.scores(x))


def test_multilabel_probe_learns_tags():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 8)).astype(np.float32)
    tags = np.stack([x[:, 0] > 0, x[:, 1] + x[:, 2] > 0, x[:, 3] < -0.5], 1).astype(np.float32)
    probe = train_probe(x[:300], tags[:300], x[300:], tags[300:], 3, True, ProbeConfig(epochs=30), 32)
    m = multilabel_metrics(tags[300:], probe.scores(x[300:]), ["a", "b", "c"])
    assert m["roc_auc_macro"] > 0.95 and m["tags_scored"] == 3


def test_top_k_matches_scikit_learn():
    rng = np.random.default_rng(1)
    scores = rng.random((200, 10))
    y = rng.integers(0, 10, 200)
    for k in (1, 2, 5):
        assert top_k_accuracy(y, scores, k) == pytest.approx(top_k_accuracy_score(y, scores, k=k))


def test_single_label_metrics_known_case():
    y = np.array([0, 0, 1, 1, 2])
    scores = np.eye(3)[[0, 1, 1, 1, 0]]  # wrong on items 1 and 4
    m = single_label_metrics(y, scores, ["a", "b", "c"])
    assert m["top1_accuracy"] == pytest.approx(0.6) and m["top5_accuracy"] == 1.0
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert m["per_class_accuracy"] == {"a": 0.5, "b": 1.0, "c": 0.0}


def test_multilabel_metrics_match_scikit_learn_and_skip_unscorable_tags():
    rng = np.random.default_rng(2)
    y = (rng.random((100, 4)) < 0.3).astype(np.float32)
    y[:, 3] = 0  # no positive in this split: left out, not NaN in the mean
    scores = rng.random((100, 4))
    m = multilabel_metrics(y, scores, list("abcd"))
    assert m["roc_auc_macro"] == pytest.approx(roc_auc_score(y[:, :3], scores[:, :3], average="macro"))
    assert m["pr_auc_macro"] == pytest.approx(average_precision_score(y[:, :3], scores[:, :3], average="macro"))
    assert set(m["per_tag"]) == {"a", "b", "c"} and m["tags_scored"] == 3


def test_the_mlp_probe_reads_what_no_linear_layer_can_and_is_seeded():
    """Known answer: XOR of two features' signs is linearly inseparable; one hidden layer solves it."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((600, 2)).astype(np.float32)
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(int)
    cfg = ProbeConfig(epochs=40, lr=1e-2, warmup_epochs=2)
    mlp = train_probe(x[:400], y[:400], x[400:500], y[400:500], 2, False, replace(cfg, kind="mlp"), 32)
    linear = train_probe(x[:400], y[:400], x[400:500], y[400:500], 2, False, cfg, 32)
    accuracy = {name: float((p.scores(x[500:]).argmax(1) == y[500:]).mean()) for name, p in
                (("mlp", mlp), ("linear", linear))}
    assert accuracy["mlp"] > 0.9 and accuracy["linear"] < 0.7, accuracy
    assert mlp.hidden_weight.shape == (512, 2) and linear.hidden_weight is None
    again = train_probe(x[:400], y[:400], x[400:500], y[400:500], 2, False, replace(cfg, kind="mlp"), 32)
    assert torch.equal(again.hidden_weight, mlp.hidden_weight)  # dropout's masks follow the seed too
    back = Probe.from_state(mlp.state())
    assert np.array_equal(back.scores(x[500:]), mlp.scores(x[500:]))
    with pytest.raises(ValueError, match="probe.kind must be one of linear, mlp"):
        ProbeConfig(kind="svm")


def test_bootstrap_resamples_tracks_not_clips():
    from s3t.eval.bootstrap import track_interval
    from s3t.eval.probe import HEADLINE_METRICS

    # two tracks of 10 clips: every clip of A right, every clip of B wrong
    targets = np.zeros(20, dtype=int)
    scores = np.tile([[0.9, 0.1]], (20, 1))
    scores[10:] = [0.1, 0.9]
    tracks = ["A"] * 10 + ["B"] * 10
    top1 = HEADLINE_METRICS["top1_accuracy"]
    assert track_interval(top1, [scores], targets, tracks) == [0.0, 1.0]  # draws of AA and BB: 1/4 each
    # as 20 independent items the same clips give a narrow interval around 0.5
    low, high = track_interval(top1, [scores], targets, [str(i) for i in range(20)])
    assert 0.25 <= low < 0.5 < high <= 0.75
    assert track_interval(top1, [scores[:10]], targets[:10], tracks[:10]) == [1.0, 1.0]
