"""A built-in labeled music corpus, synthesised: tracks in five styles that differ in harmony, metre,
rhythm, tempo range and melody density. A track is a few sections, and each section draws its own
voice, key, tempo, register, mix, noise and EQ: inside a song the nuisance changes and the style does not,
which pre-training with another clip of the same track as the positive can learn, and which random
features and spectral statistics separate less well (deterministic per seed)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from s3t.audio.decode import SAMPLE_RATE

SECTIONS, SECTION_SECONDS = 2, 9.0  # `s3t demo` cuts tracks into clips of this length: one clip per section
MAJOR, MINOR = (0, 4, 7), (0, 3, 7)
VOICES = ("sine", "saw", "square", "pluck")


@dataclass(frozen=True)
class Style:
    tempo: tuple[float, float]  # beats per minute; a section draws from 20 % wider
    beats_per_bar: int
    chords: tuple[tuple[int, tuple[int, ...]], ...]  # (root in semitones, intervals) per bar
    drums: str  # none | four | backbeat | waltz | swing
    notes_per_beat: int  # melody density
    octave: int  # melody register, semitones above A2 (110 Hz); a section may sit an octave lower


STYLES = {
    "ballad": Style((60, 76), 4, ((0, MAJOR), (9, MINOR), (5, MAJOR), (7, MAJOR)), "none", 1, 12),
    "techno": Style((124, 132), 4, ((0, MINOR), (0, MINOR), (8, MAJOR), (10, MAJOR)), "four", 4, 0),
    "waltz": Style((84, 100), 3, ((0, MAJOR), (7, MAJOR), (7, MAJOR), (0, MAJOR)), "waltz", 2, 12),
    "rock": Style((110, 130), 4, ((0, (0, 7, 12)), (5, (0, 7, 12)), (7, (0, 7, 12)), (5, (0, 7, 12))),
                  "backbeat", 2, 0),
    "bossa": Style((92, 108), 4, ((2, (0, 3, 7, 10)), (7, (0, 4, 7, 10)), (0, (0, 4, 7, 11)), (9, MINOR)),
                   "swing", 2, 12),
}


def _tone(freq: float, n: int, voice: str, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    phase = 2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi)
    if voice == "sine":
        wave = np.sin(phase) + 0.3 * np.sin(2 * phase)
    elif voice == "square":
        wave = sum(np.sin(k * phase) / k for k in (1, 3, 5, 7))
    elif voice == "saw":
        wave = sum(np.sin(k * phase) / k for k in range(1, 9))
        wave = np.tanh(2.0 * wave)  # a little drive
    else:  # pluck: bright attack that dulls
        wave = sum(np.sin(k * phase) * np.exp(-t * 4 * k) / k for k in range(1, 7))
    return wave


def _envelope(n: int, attack: float, decay: float) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    return np.minimum(1.0, t / max(attack, 1e-4)) * np.exp(-t * decay)


def _drum(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    if kind == "kick":
        return np.sin(2 * np.pi * (50 + 100 * np.exp(-t * 30)) * t) * np.exp(-t * 12)
    if kind == "snare":
        return rng.standard_normal(n) * np.exp(-t * 25) * 0.6 + np.sin(2 * np.pi * 190 * t) * np.exp(-t * 20) * 0.3
    noise = rng.standard_normal(n)
    hat = np.diff(noise, prepend=0.0)  # high-passed
    return hat * np.exp(-t * (60 if kind == "hat" else 15)) * 0.25


DRUM_PATTERNS = {  # (instrument, position in beats) within one bar
    "four": lambda b: [("kick", i) for i in range(b)] + [("hat", i + 0.5) for i in range(b)],
    "backbeat": lambda b: [("kick", 0), ("kick", 2.5), ("snare", 1), ("snare", 3)] + [("hat", i / 2) for i in range(2 * b)],
    "waltz": lambda b: [("kick", 0), ("hat", 1), ("hat", 2)],
    "swing": lambda b: [("ride", i) for i in range(b)] + [("ride", i + 2 / 3) for i in range(b)] + [("kick", 0)],
    "none": lambda b: [],
}


def _place(out: np.ndarray, sound: np.ndarray, at: int) -> None:
    end = min(len(out), at + len(sound))
    if at < end:
        out[at:end] += sound[: end - at]


def synth_section(style: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """One section of a track in `style`, with its own voice, key, tempo, register, mix, noise and EQ; peak 0.8."""
    s = STYLES[style]
    n = int(seconds * SAMPLE_RATE)
    beat = 60.0 / rng.uniform(0.8 * s.tempo[0], 1.2 * s.tempo[1])
    key = rng.integers(-5, 7)
    voice = rng.choice(VOICES)
    octave = s.octave + 12 * rng.integers(-1, 1)
    harmony, melody, drums = np.zeros(n), np.zeros(n), np.zeros(n)
    bar_len = beat * s.beats_per_bar
    for bar in range(int(np.ceil(seconds / bar_len))):
        root, intervals = s.chords[bar % len(s.chords)]
        start = int(bar * bar_len * SAMPLE_RATE)
        length = int(bar_len * SAMPLE_RATE)
        for iv in intervals:  # the chord, held for the bar
            f = 110.0 * 2 ** ((key + root + iv - 12) / 12)
            _place(harmony, _tone(f, length, voice, rng) * _envelope(length, 0.02, 1.0 / bar_len), start)
        scale = [root + iv + 12 * o for o in (0, 1) for iv in intervals]
        for k in range(s.beats_per_bar * s.notes_per_beat):  # a melody on chord tones
            if rng.random() < 0.2:
                continue
            note_len = int(beat / s.notes_per_beat * SAMPLE_RATE)
            f = 110.0 * 2 ** ((key + octave + rng.choice(scale)) / 12)
            _place(melody, _tone(f, note_len, voice, rng) * _envelope(note_len, 0.005, 6.0 * s.notes_per_beat),
                   start + k * note_len)
        for kind, pos in DRUM_PATTERNS[s.drums](s.beats_per_bar):
            _place(drums, _drum(kind, int(0.4 * SAMPLE_RATE), rng), start + int(pos * beat * SAMPLE_RATE))
    mix = (rng.uniform(0.15, 0.6) * harmony / max(1e-9, np.abs(harmony).max())
           + rng.uniform(0.15, 0.6) * melody / max(1e-9, np.abs(melody).max()))
    if drums.any():
        mix += rng.uniform(0.05, 0.6) * drums / np.abs(drums).max()
    mix += rng.uniform(0.003, 0.05) * rng.standard_normal(n)  # room noise: no section is digitally silent
    freq = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    freq[0] = freq[1]
    mix = np.fft.irfft(np.fft.rfft(mix) * (freq / 1000.0) ** rng.uniform(-0.5, 0.5), n)  # EQ: ±3 dB per octave
    return 0.8 * mix / np.abs(mix).max()


def synth_track(style: str, seed: int, sections: int = SECTIONS,
                section_seconds: float = SECTION_SECONDS) -> np.ndarray:
    """One mono float32 track at 22,050 Hz in `style`: `sections` sections played one after another."""
    rng = np.random.default_rng(seed)
    return np.concatenate([synth_section(style, section_seconds, rng) for _ in range(sections)]).astype(np.float32)


def write_corpus(out: str | Path, tracks_per_style: int = 40, sections: int = SECTIONS,
                 section_seconds: float = SECTION_SECONDS, seed: int = 0) -> Path:
    """Write `<style>/<style>_NNN.flac` for every style under `out` (a `folder` dataset); skips
    files already there, so a second call is instant. Returns `out`."""
    out = Path(out)
    for k, style in enumerate(STYLES):
        folder = out / style
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(tracks_per_style):
            path = folder / f"{style}_{i:03d}.flac"
            if not path.exists():
                tmp = path.with_name(path.stem + ".tmp.flac")
                audio = synth_track(style, seed * 100_000 + k * 1000 + i, sections, section_seconds)
                sf.write(str(tmp), audio, SAMPLE_RATE, subtype="PCM_16")
                tmp.replace(path)
    return out
