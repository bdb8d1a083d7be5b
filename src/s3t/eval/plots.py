"""Pictures of results: confusion matrices, per-tag scores, 2-D embedding maps (matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from s3t.io.figures import pyplot, save_figure


def plot_confusion(matrix: np.ndarray, classes: list[str], png: str | Path) -> None:
    """Row-normalised confusion matrix (true class per row), with the counts written in."""
    plt = pyplot()
    rates = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    size = 2 + 0.5 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(classes)):
        for j in range(len(classes)):
            if matrix[i, j]:
                ax.text(j, i, int(matrix[i, j]), ha="center", va="center",
                        color="white" if rates[i, j] > 0.5 else "black", fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.046)
    save_figure(fig, png)


def plot_tag_auc(per_tag: dict[str, dict[str, float]], png: str | Path) -> None:
    """ROC-AUC per tag, sorted, as horizontal bars."""
    plt = pyplot()
    tags = sorted(per_tag, key=lambda t: per_tag[t]["roc_auc"])
    fig, ax = plt.subplots(figsize=(6, 1 + 0.22 * len(tags)))
    ax.barh(range(len(tags)), [per_tag[t]["roc_auc"] for t in tags], color="tab:blue")
    ax.set_yticks(range(len(tags)), tags, fontsize=7)
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_xlabel("ROC-AUC (test)")
    save_figure(fig, png)


def embedding_2d(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N, D) -> (N, 2): t-SNE (PCA-initialised) for up to 5,000 points, else PCA."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = (features - features.mean(0)) / (features.std(0) + 1e-6)
    if len(x) < 5 or len(x) > 5000:
        return PCA(n_components=2, random_state=seed).fit_transform(x) if len(x) >= 2 else np.zeros((len(x), 2))
    return TSNE(n_components=2, perplexity=min(30.0, (len(x) - 1) / 3), init="pca",
                random_state=seed).fit_transform(x)


def plot_embedding_map(features: np.ndarray, labels: list[str], png: str | Path, title: str = "") -> None:
    """A 2-D map of the features, one colour per label."""
    plt = pyplot()
    points = embedding_2d(features)
    fig, ax = plt.subplots(figsize=(6, 5))
    for k, label in enumerate(sorted(set(labels))):
        mask = np.array([lab == label for lab in labels])
        ax.scatter(points[mask, 0], points[mask, 1], s=12, label=label, color=plt.cm.tab10(k % 10))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or "test embeddings (t-SNE)")
    ax.legend(fontsize=7, markerscale=1.5, loc="best")
    save_figure(fig, png)
