"""benchmarks/paired_probes.py, the paired test of issue 11's table: known answers on hand-made hits."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
from paired_probes import paired, sign_test, top1  # noqa: E402


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
