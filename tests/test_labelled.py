"""The labelled-data layer: splits as rows of cached items or clips, targets, label subsets."""

from pathlib import Path

import numpy as np
import pytest

from audio_fixtures import write_calm_busy_folder
from s3t.data.cache import CacheError
from s3t.data.datasets import load_folder
from s3t.data.labeled_cache import LabeledCache, label_subset, targets_of
from s3t.data.labeled_set import Item, LabeledSet


@pytest.fixture(scope="module")
def folder_tree(tmp_path_factory) -> Path:
    return write_calm_busy_folder(tmp_path_factory.mktemp("labelled_data"), per_class=6)


def test_label_subset_is_stratified_and_seeded(folder_tree):
    ds = load_folder(folder_tree)
    train = [i.path for i in ds.split("train")]
    few = label_subset(ds, train, 0.01, seed=0)
    assert len(few) == 2 and {Path(p).parent.name for p in few} == {"calm", "busy"}
    assert label_subset(ds, train, 1.0, seed=5) == set(train)
    assert label_subset(ds, train, 0.5, seed=0) != label_subset(ds, train, 0.5, seed=1)


def test_targets_are_class_ids_or_multi_hot_tags():
    items = [Item("a", ("rock",), "train"), Item("b", ("jazz", "sax"), "train"), Item("c", ("sax", "other"), "test")]
    single = LabeledSet("s", ["jazz", "rock"], False, items[:1])
    assert targets_of(single, items[:1]).tolist() == [1]
    tags = LabeledSet("t", ["jazz", "rock", "sax"], True, items)
    assert targets_of(tags, items).tolist() == [[0, 1, 0], [1, 0, 1], [0, 0, 1]]  # unknown tags dropped
    assert tags.headline == ("roc_auc_macro", "pr_auc_macro") and tags.probe_batch == 64


def test_prepare_gives_every_split_its_rows_clips_included(folder_tree, tmp_path):
    data = LabeledCache.prepare(load_folder(folder_tree), tmp_path, clip_seconds=1.0, workers=0, progress=False)
    assert data.clips and set(data.rows) == {"train", "valid", "test"}
    tracks = {s: {t for _, t in rows} for s, rows in data.rows.items()}
    assert not (tracks["train"] & tracks["test"]) and not (tracks["train"] & tracks["valid"])  # split by track
    assert len(data.rows["train"]) > len(tracks["train"])  # 2-s fixtures cut into two clips each
    train = data.train_subset(0.01, seed=0)
    assert len({t for _, t in train}) == 2 and data.targets(train).tolist().count(0) >= 1
    assert [data.cache.track_ids[i] for i in data.indices(train)] == [cid for cid, _ in train]
    assert (tmp_path / "manifest.csv").exists() and np.isin(data.targets(data.rows["test"]), [0, 1]).all()
    with pytest.raises(CacheError, match=r"prepared with other settings .*'clip_seconds': \(1.0, 0.0\)"):
        LabeledCache.prepare(load_folder(folder_tree), tmp_path, workers=0, progress=False)
    again = LabeledCache.prepare(load_folder(folder_tree), tmp_path, clip_seconds=1, workers=0, progress=False)
    assert again.rows == data.rows  # 1 s from Python is the 1.0 s the command line stored
