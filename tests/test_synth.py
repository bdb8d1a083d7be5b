"""The built-in corpus: synthetic clips, deterministic per seed, in styles that differ."""

import numpy as np

from s3t.synth import STYLES, synth_clip, write_corpus


def test_synth_is_deterministic_and_styles_differ():
    a, b = synth_clip("techno", 3.0, seed=1), synth_clip("techno", 3.0, seed=1)
    assert a.dtype == np.float32 and a.shape == (3 * 22050,) and np.array_equal(a, b)
    assert np.abs(a).max() == np.float32(0.8)
    assert not np.array_equal(a, synth_clip("techno", 3.0, seed=2))
    assert len({round(float(np.abs(synth_clip(s, 3.0, 0)).mean()), 4) for s in STYLES}) == len(STYLES)


def test_write_corpus_is_a_folder_dataset_and_skips_existing(tmp_path):
    write_corpus(tmp_path, clips_per_style=2, seconds=1.0)
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.flac"))
    assert files[:2] == ["ballad/ballad_000.flac", "ballad/ballad_001.flac"] and len(files) == 2 * len(STYLES)
    stamp = (tmp_path / files[0]).stat().st_mtime_ns
    write_corpus(tmp_path, clips_per_style=2, seconds=1.0)
    assert (tmp_path / files[0]).stat().st_mtime_ns == stamp
