"""The paired tests of issue 11 (benchmarks/paired_probes.py, cv_probes.py): known answers on hand-made hits,
and the per-track hits linear-eval writes for them."""

import csv
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from audio_fixtures import write_calm_busy_folder
from s3t.config.schema import ProbeConfig
from s3t.data.datasets import load_folder
from s3t.eval.linear_eval import linear_eval
from s3t.inference.encoders import CqtStatsEncoder

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
from cv_probes import cv_hits, folds, labelled_features  # noqa: E402
from nested_cv import nested_hits  # noqa: E402
from paired_probes import hits_per_test_track, paired, sign_test, top1  # noqa: E402


def hits(track_right: list[int], clips_right: list[int], clips: int = 4) -> dict:
    return {f"t{i}": (c, clips, r) for i, (c, r) in enumerate(zip(clips_right, track_right))}


def test_top1_weights_clips_and_counts_tracks():
    run = {"a": (3, 4, 1), "b": (0, 2, 0)}
    assert top1(run, "clip") == pytest.approx(3 / 6)
    assert top1(run, "track") == 0.5


def test_paired_difference_and_bootstrap_on_a_known_case():
    a = [hits([1, 1, 1, 0], [4, 3, 2, 0])] * 3
    b = [hits([0, 1, 0, 0], [1, 3, 1, 0])] * 3
    track = paired(a, b, "track")
    assert track["mean"] == pytest.approx(0.5)  # 2 of 4 tracks gained, none lost
    assert track["low"] >= 0 and track["high"] <= 1 and track["low"] <= 0.5 <= track["high"]
    assert track["p_not_better"] == pytest.approx(0.5**4, abs=0.01)  # only draws of the two tied tracks alone
    clip = paired(a, b, "clip")
    assert clip["mean"] == pytest.approx((9 - 5) / 16)


def test_no_difference_is_never_called_better():
    a = [hits([1, 0, 1], [2, 1, 3])] * 2
    res = paired(a, a, "clip")
    assert res["mean"] == 0 and res["p_not_better"] == 1.0


def test_sign_test():
    assert sign_test(3, 3) == pytest.approx(1 / 8)
    assert sign_test(0, 3) == 1.0
    assert sign_test(4, 5) == pytest.approx(6 / 32)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> tuple[Path, dict]:
    """A linear-eval folder (cqt-stats, 2-s tracks cut into 1-s clips, 2 probe seeds) and its metrics."""
    root = tmp_path_factory.mktemp("paired")
    dataset = load_folder(write_calm_busy_folder(root / "audio", per_class=8))
    # a few epochs from a small lr: the probe seeds disagree, so their hits must not be mixed up
    cfg = ProbeConfig(epochs=3, lr=3e-3, warmup_epochs=0)
    metrics = linear_eval(dataset, CqtStatsEncoder(), root / "le", cfg, seeds=2, clip_seconds=1.0, workers=0,
                          progress=False)
    return root / "le", metrics


def test_linear_eval_writes_the_test_hits_its_metrics_come_from(evaluated):
    folder, metrics = evaluated
    rows = list(csv.DictReader((folder / "test_hits.csv").read_text().splitlines()))
    assert {r["seed"] for r in rows} == {"0", "1"}
    seed0 = [r for r in rows if r["seed"] == "0"]
    assert len(seed0) == metrics["counts"]["test"] // 2  # 2-s tracks cut into two 1-s clips
    assert sum(int(r["clips"]) for r in seed0) == metrics["counts"]["test"]
    clip0 = sum(int(r["clips_right"]) for r in seed0) / metrics["counts"]["test"]
    assert clip0 == pytest.approx(metrics["clip"]["seed0"]["top1_accuracy"])
    assert np.mean([int(r["track_right"]) for r in seed0]) == pytest.approx(metrics["track"]["seed0"]["top1_accuracy"])
    hits = hits_per_test_track(folder)  # both seeds: what the paired test reads
    for level in ("clip", "track"):
        assert top1(hits, level) == pytest.approx(metrics[level]["top1_accuracy"]["mean"])


def test_cross_validation_tests_every_labelled_track_once_on_folds_of_whole_tracks(evaluated):
    folder, metrics = evaluated
    x, y, tracks, classes, cfg = labelled_features(folder)
    assert len(x) == sum(metrics["counts"][s] for s in ("train", "valid", "test")) and cfg.lr == 3e-3
    tested = []
    for train, valid, test in folds(y, tracks, k=4, seed=0):
        parts = [set(tracks[i]) for i in (train, valid, test)]
        assert all(parts) and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
        tested += sorted(parts[2])
    assert sorted(tested) == sorted(set(tracks))  # each track a test track exactly once
    x_dev, _, dev_tracks, _, _ = labelled_features(folder, ("train", "valid"))  # choosing without the test split
    assert len(x_dev) == metrics["counts"]["train"] + metrics["counts"]["valid"]
    test_tracks = {t for t in tracks if t not in set(dev_tracks)}
    assert len(test_tracks) == metrics["counts"]["test"] // 2
    hits = cv_hits(folder, k=4, probe_seeds=2)  # tracks named below the corpus folder, as paired_probes names them
    assert set(hits) == {str(Path(t).relative_to(folder.parent / "audio")) for t in tracks} and all(h[1] == 2 * 2 for h in hits.values())  # 2 clips x 2 probe seeds
    assert all(0 <= h[0] <= h[1] and h[2] in (0, 0.5, 1) for h in hits.values())


def test_runs_over_copies_of_one_corpus_in_different_places_pair_track_by_track(evaluated, tmp_path):
    folder, _ = evaluated
    text = (folder / "test_hits.csv").read_text()
    root = str(folder.parent / "audio")
    assert text.count(root) == len(text.splitlines()) - 1  # every row names its track by absolute path
    moved = tmp_path / "seed1"
    moved.mkdir()
    (moved / "test_hits.csv").write_text(text.replace(root, str(tmp_path / "elsewhere" / "corpus")))
    here, there = hits_per_test_track(folder), hits_per_test_track(moved)
    assert here == there and all(t.startswith(("calm/", "busy/")) for t in here)


def test_nested_cross_validation_chooses_the_informative_readout_in_every_fold(tmp_path):
    # 20 tracks a class: an inner fold still has the ten training tracks a class that picking the epoch needs
    dataset = load_folder(write_calm_busy_folder(tmp_path / "audio", per_class=20))
    folder = tmp_path / "le"
    linear_eval(dataset, CqtStatsEncoder(), folder, ProbeConfig(epochs=3, lr=3e-3, warmup_epochs=0), seeds=1,
                clip_seconds=1.0, workers=0, progress=False)
    noise = tmp_path / "noise"  # the same clips read out as noise: a candidate no fold should choose
    shutil.copytree(folder, noise)
    (features,) = (noise / "features").glob("*.npz")
    with np.load(features) as f:
        arrays = dict(f)
    arrays["features"] = np.random.default_rng(0).standard_normal(arrays["features"].shape).astype(np.float32)
    np.savez(features, **arrays)
    hits, chosen = nested_hits([str(noise), str(folder)], k=4, inner_k=3, probe_seeds=2)
    assert chosen == [1, 1, 1, 1]
    x, y, tracks, _, _ = labelled_features(folder)
    assert set(hits) == {str(Path(t).relative_to(folder.parent / "audio")) for t in tracks}  # each tested once
    assert all(h[1] == 2 * 2 for h in hits.values())  # 2 clips x 2 probe seeds
    assert top1(hits, "clip") > 0.75  # the calm / busy statistics, not the noise
    np.savez(features, **{**arrays, "track_ids": arrays["track_ids"][::-1], "features": arrays["features"][::-1]})
    with pytest.raises(SystemExit, match="not the same labelled clips"):
        nested_hits([str(noise), str(folder)], k=4, inner_k=3, probe_seeds=2)
