"""The track cache: crops are views of the stored log-CQT, damage is detected, parts prepared apart
read as one corpus, the cache travels to DataLoader workers, and a commit cut short loses nothing."""

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from s3t.data.cache import CacheError, open_cache
from s3t.data.preparation import prepare
from s3t.io.checkpoint import load_checkpoint


def test_crops_are_views_of_the_track(prepared):
    cache = open_cache(prepared)
    whole = np.array(cache[2])
    np.testing.assert_array_equal(cache.crop(2, 10, 50), whole[:, 10:60])
    with pytest.raises(IndexError):
        cache.crop(2, whole.shape[1] - 5, 10)


def test_damaged_shard_is_detected(corpus, tmp_path):
    prepare(corpus, tmp_path, workers=0, progress=False)
    shard = next((tmp_path / "shards").iterdir())
    data = bytearray(shard.read_bytes())
    data[-10] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(CacheError, match="checksum mismatch.*run `s3t prepare` again"):
        open_cache(tmp_path).verify()
    shard.write_bytes(bytes(data[:-100]))
    with pytest.raises(CacheError, match="damaged"):
        open_cache(tmp_path)[0]


def test_parts_prepared_apart_are_read_as_one_corpus(corpus, prepared, tmp_path):
    from s3t.cli import main as cli
    from s3t.data.cache import Corpus, open_corpus

    parts = [tmp_path / f"part{k}" for k in (1, 2)]
    for k, out in enumerate(parts, 1):
        assert cli(["prepare", str(corpus), "--out", str(out), "--workers", "0", "--part", f"{k}/2",
                    "--no-progress"]) == 0
    whole = open_cache(prepared)
    ids = [open_cache(p).track_ids for p in parts]
    assert [len(i) for i in ids] == [3, 3] and not set(ids[0]) & set(ids[1])
    both = open_corpus(parts)
    assert isinstance(both, Corpus) and sorted(both.track_ids) == whole.track_ids
    for i, track in enumerate(both.track_ids):  # every item reads as it does from the whole cache
        j = whole.track_ids.index(track)
        assert both.frames[i] == whole.frames[j] and np.array_equal(both[i], whole[j])
        assert np.array_equal(both.frames_at(i, np.array([0, 2])), whole.crop(j, 0, 3)[:, [0, 2]])
    # pretraining reads the parts as one corpus: 6 tracks, one batch of 6 per epoch
    run = tmp_path / "run"
    assert cli(["pretrain", "--data", *map(str, parts), "--out", str(run), "--config", "tiny", "--no-progress",
                "--set", "train.batch_size=6", "moco.queue_size=12", "optim.epochs=2", "train.workers=0"]) == 0
    assert load_checkpoint(run / "last.pt")["progress"]["step"] == 2
    # caches prepared differently are not one corpus
    prepare(corpus, tmp_path / "pooled", workers=0, time_compression=4, progress=False)
    with pytest.raises(CacheError, match="must be prepared alike"):
        open_corpus([parts[0], tmp_path / "pooled"])
    with pytest.raises(SystemExit):
        cli(["prepare", str(corpus), "--out", str(tmp_path / "x"), "--part", "3/2"])


class FirstFrames(torch.utils.data.Dataset):
    """The first 32 frames of each cached track; the Cache travels to spawned workers by pickle."""

    def __init__(self, cache):
        self.cache = cache

    def __len__(self):
        return len(self.cache)

    def __getitem__(self, i):
        return torch.from_numpy(np.array(self.cache.crop(i, 0, 32), dtype=np.float32))


def test_cache_is_readable_from_dataloader_workers(prepared):
    cache = open_cache(prepared)
    cache[0]  # open a memory map here first: it must not travel to the workers
    loader = torch.utils.data.DataLoader(FirstFrames(cache), batch_size=3, num_workers=2,
                                         multiprocessing_context="spawn")
    batches = list(loader)
    assert [tuple(b.shape) for b in batches] == [(3, 84, 32), (3, 84, 32)]
    np.testing.assert_array_equal(batches[1][0].numpy(), cache.crop(3, 0, 32).astype(np.float32))


def test_cache_killed_inside_a_commit_opens_with_the_last_committed_tracks(prepared, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(prepared, cache)
    kill_inside_commit = (
        "import os, signal, sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1])\n"
        "db.execute('PRAGMA cache_size=1')\n"  # spill pages so the journal is on disk before the kill
        "db.execute('BEGIN')\n"
        "db.executemany('INSERT INTO skipped VALUES (?, ?, ?)', [(str(i), 'x' * 200, 'y') for i in range(5000)])\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n")
    subprocess.run([sys.executable, "-c", kill_inside_commit, str(cache / "index.sqlite")])
    assert (cache / "index.sqlite-journal").stat().st_size > 0
    reopened, committed = open_cache(cache), open_cache(prepared)
    assert reopened.track_ids == committed.track_ids
    assert reopened.skipped == committed.skipped
