import csv
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

REALMUSIC_MANIFEST = Path(os.environ.get("S3T_REALMUSIC", "/tmp/realmusic-dev.csv"))


@pytest.fixture(scope="session")
def realmusic_paths() -> list[str]:
    """Paths of the real-music dev corpus (../shared/data/realmusic-dev), one per class."""
    if not REALMUSIC_MANIFEST.is_file():
        pytest.skip(f"real-music corpus not built ({REALMUSIC_MANIFEST}); .ci/run builds it")
    rows = list(csv.DictReader(open(REALMUSIC_MANIFEST)))
    by_label = {}
    for row in rows:
        by_label.setdefault(row["label"], row["path"])
    return list(by_label.values())


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    """A prepared cache of 16 synthetic 4-s tracks: two batches of 8 per epoch for the training tests."""
    from audio_fixtures import write_music
    from s3t.data.preparation import prepare

    audio_dir = tmp_path_factory.mktemp("train_audio")
    for i in range(16):
        write_music(audio_dir / f"t{i:02d}.wav", seconds=4.0, seed=100 + i)
    out = tmp_path_factory.mktemp("train_cache")
    prepare(audio_dir, out, workers=0, progress=False)
    return out


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """Six 3-s tracks in four formats, mono and stereo, in two artist folders."""
    from audio_fixtures import make_corpus

    root = tmp_path_factory.mktemp("corpus")
    make_corpus(root)
    return root


@pytest.fixture(scope="session")
def prepared(corpus, tmp_path_factory) -> Path:
    """`corpus` prepared (read it, never change it)."""
    from s3t.data.preparation import prepare

    out = tmp_path_factory.mktemp("cache")
    prepare(corpus, out, workers=0, progress=False)
    return out
