import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from audio_fixtures import make_corpus, synth_music, write_broken_files
from s3t.audio import constant_q, decode
from s3t.audio.constant_q import log_cqt_frames
from s3t.data.cache import CacheError, open_cache
from s3t.data.preparation import InputError, list_sources, prepare


def test_cache_holds_the_log_cqt_of_every_track(corpus, prepared):
    cache = open_cache(prepared)
    assert len(cache) == 6
    assert cache.track_ids == sorted(s.track_id for s in list_sources(corpus))
    for i, track_id in enumerate(cache.track_ids):
        wave = decode.load_audio(corpus / track_id)
        expected = log_cqt_frames(wave, 1).T  # (84, T) float16
        got = cache[i]
        assert got.shape == (84, constant_q.n_frames(len(wave))) and got.dtype == np.float16
        np.testing.assert_array_equal(got, expected)
        assert cache.durations[i] == pytest.approx(len(wave) / 22050)
    assert cache.meta["time_compression"] == 1 and cache.meta["floor_db"] == constant_q.FLOOR_DB


def test_cached_values_match_the_float32_cqt(corpus, prepared):
    cache = open_cache(prepared)
    wave = decode.load_audio(corpus / cache.track_ids[0])
    ref = constant_q.cqt(wave)[0].numpy()
    np.testing.assert_allclose(cache[0].astype(np.float32), ref, atol=0.07)  # float16 at |x| <= 128


def test_resume_skips_done_tracks(corpus, prepared):
    summary = prepare(corpus, prepared, workers=0, progress=False)
    assert summary.written == 0 and summary.already_done == 6
    assert len(open_cache(prepared)) == 6


def test_parallel_workers_give_the_same_cache(corpus, prepared, tmp_path):
    # `prepared` ran the CQT on 2 threads in this process first: the forked workers must not hang
    summary = prepare(corpus, tmp_path, workers=2, shard_mb=0.05, progress=False)
    assert summary.written == 6
    a, b = open_cache(prepared), open_cache(tmp_path)
    assert a.track_ids == b.track_ids
    assert len(list((tmp_path / "shards").iterdir())) > 1  # small shards: several were written
    for i in range(len(a)):
        np.testing.assert_array_equal(a[i], b[i])


def test_bad_files_are_skipped_and_named(corpus, tmp_path, caplog):
    folder = tmp_path / "mixed"
    make_corpus(folder, n=3)
    broken = write_broken_files(folder / "bad")
    summary = prepare(folder, tmp_path / "cache", workers=0, progress=False)
    assert summary.written == 3
    assert set(summary.skipped) == {str(p) for p in broken.values()}
    assert "less than one hop" in summary.skipped[str(broken["too_short"])]
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == len(broken)  # one warning per bad file
    for path in broken.values():
        assert sum(str(path) in r.getMessage() for r in warnings) == 1
    assert open_cache(tmp_path / "cache").skipped.keys() == summary.skipped.keys()


def test_time_compression_pools_frames(corpus, tmp_path):
    prepare(corpus, tmp_path, workers=0, time_compression=100, progress=False)
    cache = open_cache(tmp_path)
    wave = decode.load_audio(corpus / cache.track_ids[0])
    frames = constant_q.n_frames(len(wave))
    assert cache.frames[0] == -(-frames // 100)
    mag = constant_q.cqt(wave, log=False)
    expected = constant_q.amplitude_to_db(mag[..., :100].mean(-1))[0]  # first window: plain mean of 100 frames
    np.testing.assert_allclose(cache[0][:, 0].astype(np.float32), expected.numpy(), atol=0.07)
    assert cache.meta["frame_rate"] == pytest.approx(22050 / 512 / 100)
    with pytest.raises(CacheError, match="time_compression"):
        prepare(corpus, tmp_path, workers=0, time_compression=10, progress=False)


def test_manifest_keeps_metadata_and_resolves_relative_paths(corpus, tmp_path):
    files = sorted(p.relative_to(corpus).as_posix() for p in corpus.rglob("*.*"))
    manifest = corpus / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "split"])
        for i, rel in enumerate(files):
            w.writerow([rel, f"class{i % 3}", "train" if i < 4 else "test"])
    try:
        prepare(manifest, tmp_path, workers=0, progress=False)
    finally:
        manifest.unlink()
    cache = open_cache(tmp_path)
    assert cache.track_ids == files
    meta = cache.metadata(cache.index_of(files[4]))
    assert meta["label"] == "class1" and meta["split"] == "test" and meta["source"] == str(corpus / files[4])


def test_bad_inputs_fail_with_the_expected_form(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no audio files found"):
        list_sources(tmp_path / "empty")
    bad = tmp_path / "m.csv"
    bad.write_text("file,label\na.wav,x\n")
    with pytest.raises(InputError, match="'path' column"):
        list_sources(bad)
    with pytest.raises(InputError, match="expected a folder"):
        list_sources(tmp_path / "nope")
    with pytest.raises(CacheError, match="not an S3T cache"):
        open_cache(tmp_path)


def test_pretrain_and_embed_refuse_a_flipped_bit_and_prepare_rebuilds_it(corpus, tmp_path):
    reference = tmp_path / "reference"
    prepare(corpus, reference, workers=0, progress=False)
    cache = tmp_path / "cache"
    prepare(corpus, cache, workers=0, shard_mb=0.05, progress=False)  # several shards
    shards = sorted((cache / "shards").iterdir())
    data = bytearray(shards[1].read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit in the middle of the CQT values: np.load would not notice
    shards[1].write_bytes(bytes(data))
    for command in (["pretrain", "--data", str(cache), "--out", str(tmp_path / "run"), "--config", "tiny"],
                    ["embed", str(cache), "--encoder", "random", "--config", "tiny", "--out", str(tmp_path / "f.npz")]):
        run = run_cli(*command, "--no-progress")
        assert run.returncode == 2 and "checksum mismatch" in run.stderr, run.stderr

    summary = prepare(corpus, cache, workers=0, shard_mb=0.05, progress=False)
    assert summary.written >= 1 and summary.already_done == len(list_sources(corpus)) - summary.written
    rebuilt, ref = open_cache(cache), open_cache(reference)
    rebuilt.verify()
    for track in ref.track_ids:
        assert np.array_equal(rebuilt[rebuilt.index_of(track)], ref[ref.index_of(track)])


def run_cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "s3t", *args], capture_output=True, text=True, timeout=300, **kw)


def test_cli_prepare_end_to_end(tmp_path):
    folder = tmp_path / "in"
    make_corpus(folder, n=2)
    write_broken_files(folder / "bad")
    result = run_cli("prepare", str(folder), "--out", str(tmp_path / "c"), "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert "tracks written: 2" in result.stdout and "skipped: 5" in result.stdout
    assert json.loads((tmp_path / "c" / "last_prepare.json").read_text())["written"] == 2
    bad = run_cli("prepare", str(folder), "--out", str(tmp_path / "c"), "--workers", "-1")
    assert bad.returncode == 2 and "must be a whole number >= 0" in bad.stderr
    missing = run_cli("prepare", str(tmp_path / "nothing"), "--out", str(tmp_path / "d"))
    assert missing.returncode == 2 and "expected a folder of audio files" in missing.stderr
    only_bad = run_cli("prepare", str(folder / "bad"), "--out", str(tmp_path / "e"))
    assert only_bad.returncode == 1 and "tracks written: 0" in only_bad.stdout


def test_sigkill_mid_run_then_resume_equals_uninterrupted(tmp_path):
    folder = tmp_path / "in"
    make_corpus(folder, n=16, seconds=4.0)
    reference = tmp_path / "ref"
    prepare(folder, reference, workers=0, progress=False)
    out = tmp_path / "killed"
    args = [sys.executable, "-m", "s3t", "prepare", str(folder), "--out", str(out), "--workers", "0",
            "--shard-mb", "0.1", "--no-progress"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / "shards").glob("shard-000002.npy*")):
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = len(open_cache(out))
    assert 0 < partial < 16  # killed mid-run, with some tracks committed
    summary = prepare(folder, out, workers=0, progress=False)
    assert summary.already_done == partial and summary.written == 16 - partial
    a, b = open_cache(reference), open_cache(out)
    assert a.track_ids == b.track_ids
    for i in range(len(a)):
        np.testing.assert_array_equal(a[i], b[i])
    b.verify()
    assert not list((out / "shards").glob("*.tmp"))


def test_bad_device_fails_at_once(corpus, tmp_path):
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        prepare(corpus, tmp_path, device="gpu0", progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device is visible"):
            prepare(corpus, tmp_path, device="cuda", progress=False)
    assert not (tmp_path / "index.sqlite").exists()  # nothing written before the check


@pytest.mark.parametrize("time_compression", [1, 7])
def test_a_batch_of_tracks_of_different_lengths_gives_each_its_own_cqt(time_compression):
    from s3t.audio.constant_q import log_cqt_batch

    waves = [synth_music(seconds, seed=k) for k, seconds in enumerate((3.0, 0.7, 2.2))]
    batch = log_cqt_batch(waves, time_compression)
    for wave, spec in zip(waves, batch):
        alone = log_cqt_frames(wave, time_compression)
        assert spec.shape == alone.shape == (-(-constant_q.n_frames(len(wave)) // time_compression), 84)
        np.testing.assert_allclose(spec.astype(np.float32), alone.astype(np.float32), atol=0.07)  # 1 float16 step


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_prepare_on_gpu_matches_cpu(corpus, prepared, tmp_path):
    prepare(corpus, tmp_path, workers=2, device="cuda", progress=False)
    a, b = open_cache(prepared), open_cache(tmp_path)
    for i in range(len(a)):
        np.testing.assert_allclose(a[i].astype(np.float32), b[i].astype(np.float32), atol=0.1)


def test_clip_seconds_cuts_whole_clips_and_keeps_the_track(corpus, prepared, tmp_path):
    prepare(corpus, tmp_path, workers=0, clip_seconds=1.0, progress=False)
    whole, clips = open_cache(prepared), open_cache(tmp_path)
    n = round(22050 / 512)  # frames per second-long clip
    first = whole.track_ids[0]
    ids = [t for t in clips.track_ids if t.startswith(first + "#")]
    assert ids == [f"{first}#{k:04d}" for k in range(whole.frames[0] // n)]
    for k, clip_id in enumerate(ids):
        i = clips.index_of(clip_id)
        np.testing.assert_array_equal(clips[i], whole[0][:, k * n : (k + 1) * n])
        meta = clips.metadata(i)
        assert meta["track"] == first and meta["clip"] == k and meta["start_s"] == pytest.approx(k * n * 512 / 22050)
    assert set(clips.column("track")) == set(whole.track_ids)
    again = prepare(corpus, tmp_path, workers=0, clip_seconds=1.0, progress=False)
    assert again.written == 0 and again.already_done == 6


def test_sigkill_at_random_moments_then_resume_equals_uninterrupted(tmp_path):
    import random

    folder = tmp_path / "in"
    make_corpus(folder, n=12, seconds=4.0)
    reference = tmp_path / "ref"
    prepare(folder, reference, workers=0, progress=False)
    rng = random.Random(1)
    for trial in range(3):
        out = tmp_path / f"killed{trial}"
        args = [sys.executable, "-m", "s3t", "prepare", str(folder), "--out", str(out), "--workers", "1",
                "--shard-mb", "0.1", "--no-progress"]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, 5.0))  # start-up, mid-run or done: wherever it lands
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        prepare(folder, out, workers=0, progress=False)
        a, b = open_cache(reference), open_cache(out)
        assert a.track_ids == b.track_ids
        for i in range(len(a)):
            np.testing.assert_array_equal(a[i], b[i])
        b.verify()
