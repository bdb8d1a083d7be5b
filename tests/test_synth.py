"""The built-in corpus: synthetic tracks of sections, deterministic per seed, in styles that differ."""

import numpy as np

from s3t.audio.decode import SAMPLE_RATE as SR
from s3t.audio.synth import STYLES, synth_section, synth_track, write_corpus


def test_a_track_is_its_sections_one_after_another_each_mixed_on_its_own():
    a, b = synth_track("techno", seed=1, sections=3, section_seconds=2.0), synth_track("techno", seed=1, sections=3,
                                                                                        section_seconds=2.0)
    assert a.dtype == np.float32 and a.shape == (3 * 2 * SR,) and np.array_equal(a, b)
    rng = np.random.default_rng(1)
    sections = [synth_section("techno", 2.0, rng) for _ in range(3)]
    assert np.array_equal(a, np.concatenate(sections).astype(np.float32))
    assert np.allclose([np.abs(s).max() for s in sections], 0.8)  # each section normalised by itself
    loudness = [float(np.sqrt(np.mean(s ** 2))) for s in sections]  # its own mix and noise
    assert max(loudness) - min(loudness) > 0.01
    assert not np.array_equal(a, synth_track("techno", seed=2, sections=3, section_seconds=2.0))


def test_styles_differ():
    assert len({round(float(np.abs(synth_track(s, 0, 1, 3.0)).mean()), 4) for s in STYLES}) == len(STYLES)


def test_write_corpus_is_a_folder_dataset_and_skips_existing(tmp_path):
    write_corpus(tmp_path, tracks_per_style=2, sections=2, section_seconds=1.0)
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.flac"))
    assert files[:2] == ["ballad/ballad_000.flac", "ballad/ballad_001.flac"] and len(files) == 2 * len(STYLES)
    stamp = (tmp_path / files[0]).stat().st_mtime_ns
    write_corpus(tmp_path, tracks_per_style=2, sections=2, section_seconds=1.0)
    assert (tmp_path / files[0]).stat().st_mtime_ns == stamp
