"""Resource limits: a full disk, unreadable files, and peak memory as the corpus doubles."""

import ctypes
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from audio_fixtures import write_music
from s3t.data.cache import open_cache
from s3t.io.checkpoint import load_checkpoint

TINY = str(Path(__file__).parent.parent / "configs" / "tiny.yaml")
NO_SPACE = "No space left on device"


def s3t(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "s3t", *args], capture_output=True, text=True, timeout=300, **kwargs)


@pytest.fixture
def small_disk(tmp_path):
    """A real file system of a given size: a tmpfs mounted for the test (needs root)."""
    mount = tmp_path / "disk"
    mount.mkdir()

    def resize(size: str) -> Path:
        options = f"size={size}" if not os.path.ismount(mount) else f"remount,size={size}"
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)], capture_output=True,
                              text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()} (CI runs as root and can)")
        return mount

    yield resize
    if os.path.ismount(mount):
        subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.fixture(scope="module")
def songs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("songs")
    for i in range(10):
        write_music(folder / f"song{i}.wav", seconds=10.0, seed=i)
    return folder


def _tmp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp" in p.name]


def test_prepare_on_a_full_disk_stops_clearly_keeps_its_shards_and_resumes(songs, small_disk, tmp_path):
    reference = tmp_path / "reference"
    assert s3t("prepare", str(songs), "--out", str(reference), "--workers", "0", "--no-progress").returncode == 0
    out = small_disk("400k") / "cache"  # 10 songs × 72 kB of CQT and the index do not fit
    command = ("prepare", str(songs), "--out", str(out), "--workers", "0", "--shard-mb", "0.1", "--no-progress")
    run = s3t(*command)
    assert run.returncode == 2, run.stderr
    assert NO_SPACE in run.stderr and "run the same command again" in run.stderr and "Traceback" not in run.stderr
    partial = open_cache(out)
    partial.verify()  # every committed shard is whole
    assert 0 < len(partial) < 10 and not _tmp_files(out)

    small_disk("20m")  # the user frees space and runs the same command
    run = s3t(*command)
    assert run.returncode == 0, run.stderr
    cache, ref = open_cache(out), open_cache(reference)
    cache.verify()
    assert sorted(cache.track_ids) == sorted(ref.track_ids)
    for track in ref.track_ids:
        assert np.array_equal(cache[cache.index_of(track)], ref[ref.index_of(track)])


def test_pretrain_on_a_full_disk_stops_clearly_with_the_last_checkpoint_whole(songs, small_disk, tmp_path):
    cache = tmp_path / "cache"
    assert s3t("prepare", str(songs), "--out", str(cache), "--workers", "0", "--no-progress").returncode == 0
    settings = ("--config", TINY, "--no-progress", "--set", "train.batch_size=4", "moco.queue_size=8")
    one_epoch = s3t("pretrain", "--data", str(cache), "--out", str(tmp_path / "one"), *settings, "optim.epochs=1")
    assert one_epoch.returncode == 0, one_epoch.stderr
    size = (tmp_path / "one" / "last.pt").stat().st_size
    disk = small_disk(f"{int(4 * size)}")
    run_dir = disk / "run"
    # a run whose checkpoints cannot fit is refused before its first step, with the numbers
    command = ("pretrain", "--data", str(cache), "--out", str(run_dir), *settings, "optim.epochs=12")
    refused = s3t(*command, "train.checkpoint_every=1")
    assert refused.returncode == 2 and "raise train.checkpoint_every or make room" in refused.stderr
    assert not (run_dir / "last.pt").exists()
    # one that fits at its start, until another writer fills the disk under it
    command = (*command, "train.checkpoint_every=12")
    run = subprocess.Popen([sys.executable, "-m", "s3t", *command], stderr=subprocess.PIPE, text=True)
    while not (run_dir / "last.pt").exists() and run.poll() is None:
        time.sleep(0.01)
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    (disk / "ballast").write_bytes(b"\0" * max(0, free - size // 2))  # too little room to replace last.pt
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 2, stderr
    assert NO_SPACE in stderr and "Traceback" not in stderr
    last = load_checkpoint(run_dir / "last.pt")  # whole: its checksum holds
    assert 1 <= last["progress"]["epoch"] < 12 and not _tmp_files(run_dir)

    (disk / "ballast").unlink()  # the user makes room
    run = s3t(*command, "--resume")
    assert run.returncode == 0, run.stderr
    assert load_checkpoint(run_dir / "last.pt")["progress"]["epoch"] == 12


def test_embed_on_a_full_disk_stops_clearly_and_resumes(songs, small_disk, tmp_path):
    cache = tmp_path / "cache"
    assert s3t("prepare", str(songs), "--out", str(cache), "--workers", "0", "--no-progress").returncode == 0
    disk = small_disk("1m")
    (disk / "ballast").write_bytes(b"\0" * (1024 * 1024 - 8192))  # leaves two pages: too few for the result
    out = disk / "features.npz"
    command = ("embed", str(cache), "--encoder", "random", "--config", TINY, "--out", str(out), "--no-progress")
    run = s3t(*command)
    assert run.returncode == 2, run.stderr
    assert NO_SPACE in run.stderr and "Traceback" not in run.stderr
    assert not out.exists()

    (disk / "ballast").unlink()
    run = s3t(*command)
    assert run.returncode == 0, run.stderr
    with np.load(out) as f:
        assert f["features"].shape[0] == 10 and np.isfinite(f["features"]).all()


def _without_root_file_powers() -> None:
    """Drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set before exec: a root
    process then obeys file permissions like anyone else."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):
        if libc.prctl(24, capability, 0, 0, 0):  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_unreadable_files_are_skipped_with_the_reason(songs, tmp_path):
    folder = tmp_path / "songs"
    shutil.copytree(songs, folder)
    locked = folder / "song3.wav"
    locked.chmod(0)
    run = s3t("prepare", str(folder), "--out", str(tmp_path / "cache"), "--workers", "0", "--no-progress",
              preexec_fn=_without_root_file_powers if os.geteuid() == 0 else None)
    assert run.returncode == 0, run.stderr
    assert f"skipped {locked}: cannot open (Permission denied)" in run.stderr
    assert "skipped: 1" in run.stdout and "tracks written: 9" in run.stdout


def _peak_anonymous_mib(*args: str) -> float:
    """Peak anonymous resident memory (RssAnon: what the process allocated, not the shard pages it
    maps, which the kernel drops under pressure) of an `s3t` process, polled every 2 ms: a slower poll
    misses short peaks, more often in the shorter of two runs (seen in a fresh-clone run: embed 418 vs 427 MiB)."""
    process = subprocess.Popen([sys.executable, "-m", "s3t", *args], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    peak = 0
    while process.poll() is None:
        try:
            status = Path(f"/proc/{process.pid}/status").read_text()
            peak = max(peak, int(status.split("RssAnon:")[1].split()[0]))
        except (OSError, IndexError):
            pass
        time.sleep(0.002)
    assert process.returncode == 0, process.stderr.read()
    return peak / 1024


def test_prepare_and_embed_memory_stays_flat_when_the_corpus_grows_eightfold(tmp_path):
    """Eight times the audio may not cost more memory: a run that kept waves or CQTs would grow by
    ~560 MiB (waves) or ~47 MiB (float16 CQTs) from 16 to 128 one-minute tracks; we allow 16 MiB,
    twice the noise seen between runs (8.5 MiB once in CI, from 16 to 64 tracks)."""
    one = write_music(tmp_path / "one.wav", seconds=60.0)
    peaks = {}
    for n in (16, 128):
        folder = tmp_path / f"corpus{n}"
        folder.mkdir()
        for i in range(n):
            os.link(one, folder / f"t{i:03d}.wav")
        # each peak the higher of two fresh runs: a 2-ms poll can only miss a peak, never invent one
        # (seen in a fresh-clone run: the 16-track embed read 469 MiB where it reads 472-478)
        prepare_peak = max(_peak_anonymous_mib("prepare", str(folder), "--out", str(tmp_path / f"cache{n}-{k}"),
                                               "--workers", "0", "--shard-mb", "1", "--no-progress") for k in (0, 1))
        embed_peak = max(_peak_anonymous_mib("embed", str(tmp_path / f"cache{n}-0"), "--encoder", "random", "--config",
                                             TINY, "--out", str(tmp_path / f"f{n}-{k}.npz"), "--save-every", "8",
                                             "--no-progress") for k in (0, 1))
        peaks[n] = (prepare_peak, embed_peak)
    print(f"peak anonymous memory MiB (prepare, embed): 16 tracks {peaks[16]}, 128 tracks {peaks[128]}")
    for small, large in zip(peaks[16], peaks[128]):
        assert large - small < 16.0, peaks
