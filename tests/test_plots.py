"""Pictures of results: each plot writes a whole PNG; the 2-D map is deterministic and keeps clusters apart."""

import numpy as np
import pytest

from s3t.eval.plots import (
    embedding_2d,
    plot_confusion,
    plot_embedding_map,
    plot_tag_auc,
)

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    data = path.read_bytes()
    return data.startswith(PNG) and len(data) > 1000


def test_confusion_matrix_with_a_class_never_seen(tmp_path):
    plot_confusion(np.array([[5, 1, 0], [0, 4, 2], [0, 0, 0]]), ["a", "b", "c"], tmp_path / "confusion.png")
    assert _is_png(tmp_path / "confusion.png") and [p.name for p in tmp_path.iterdir()] == ["confusion.png"]


def test_tag_auc_bars(tmp_path):
    plot_tag_auc({"rock": {"roc_auc": 0.9}, "piano": {"roc_auc": 0.6}}, tmp_path / "tags.png")
    assert _is_png(tmp_path / "tags.png")


@pytest.mark.parametrize("n", [1, 4, 60])  # one point, PCA below 5 points, t-SNE above
def test_embedding_2d_shape_and_determinism(n):
    features = np.random.default_rng(0).normal(size=(n, 16))
    points = embedding_2d(features, seed=3)
    assert points.shape == (n, 2) and np.isfinite(points).all()
    assert np.array_equal(points, embedding_2d(features, seed=3))


def test_embedding_2d_keeps_separated_clusters_apart():
    rng = np.random.default_rng(0)
    features = np.concatenate([rng.normal(0, 1, (30, 16)), rng.normal(8, 1, (30, 16))])
    points = embedding_2d(features)
    a, b = points[:30].mean(0), points[30:].mean(0)
    spread = max(points[:30].std(0).max(), points[30:].std(0).max())
    assert np.linalg.norm(a - b) > 3 * spread


def test_embedding_map_has_a_colour_per_label(tmp_path):
    rng = np.random.default_rng(0)
    plot_embedding_map(rng.normal(size=(20, 8)), ["x", "y"] * 10, tmp_path / "map.png", title="test")
    assert _is_png(tmp_path / "map.png")
