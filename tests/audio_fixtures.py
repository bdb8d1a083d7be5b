"""Generated audio for tests: music-like signals written through real encoders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS"),
           ".mp3": ("MP3", "MPEG_LAYER_III"), ".au": ("AU", "PCM_16")}


def synth_music(seconds: float, sr: int = 22050, seed: int = 0, tempo: float = 120.0) -> np.ndarray:
    """Mono float32 'music': notes of a scale with harmonics and decays, plus noise-burst drums."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    out = np.zeros(n, np.float64)
    beat = 60.0 / tempo
    scale = 220.0 * 2 ** (np.array([0, 2, 3, 5, 7, 8, 10, 12]) / 12)
    for onset in np.arange(0.0, seconds, beat / 2):
        f0 = rng.choice(scale) * rng.choice([0.5, 1, 2])
        env = np.where(t >= onset, np.exp(-(t - onset) * 3.0), 0.0)
        for h in range(1, 6):
            out += env * np.sin(2 * np.pi * f0 * h * t) * (0.3 / h)
    for onset in np.arange(0.0, seconds, beat):
        i = int(onset * sr)
        hit = rng.standard_normal(min(2000, n - i)) * np.exp(-np.arange(min(2000, n - i)) / 300)
        out[i : i + len(hit)] += 0.5 * hit
    return (0.3 * out / max(1e-9, np.abs(out).max())).astype(np.float32)


def write_audio(path: Path, wave: np.ndarray, sr: int = 22050, channels: int = 1) -> Path:
    """Write `wave` (N,) to `path` in the format its extension names, duplicated to `channels`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt, subtype = FORMATS[path.suffix.lower()]
    data = np.repeat(wave[:, None], channels, axis=1) if channels > 1 else wave
    sf.write(str(path), data, sr, format=fmt, subtype=subtype)
    return path


# what soundfile cannot write, through FFmpeg's encoders (PyAV): extension -> (codec, container, rate)
FFMPEG_FORMATS = {".m4a": ("aac", "mp4", 44100), ".mp4": ("aac", "mp4", 44100), ".mkv": ("aac", "matroska", 44100),
                  ".webm": ("libopus", "webm", 48000), ".opus": ("libopus", "ogg", 48000),
                  ".wma": ("wmav2", "asf", 44100), ".aiff": ("pcm_s16be", "aiff", 44100)}


def write_ffmpeg(path: Path, seconds: float = 2.0, seed: int = 0) -> Path:
    """Stereo music (right channel at half the left) in the format FFMPEG_FORMATS gives the extension."""
    import av

    codec, container, sr = FFMPEG_FORMATS[Path(path).suffix]
    left = synth_music(seconds, sr, seed)
    data = np.stack([left, 0.5 * left])  # (2, N)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=sr, layout="stereo")
        stream.bit_rate = 128_000
        to_codec = av.AudioResampler(format=stream.codec_context.codec.audio_formats[0].name, layout="stereo", rate=sr)
        step = stream.codec_context.frame_size or 1024
        for i in range(0, data.shape[1], step):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[:, i : i + step]), format="fltp",
                                               layout="stereo")
            frame.sample_rate, frame.pts = sr, i
            for f in to_codec.resample(frame):
                out.mux(stream.encode(f))
        for f in to_codec.resample(None):
            out.mux(stream.encode(f))
        out.mux(stream.encode(None))
    return Path(path)


def write_music(path: Path, seconds: float = 3.0, sr: int = 22050, channels: int = 1, seed: int = 0) -> Path:
    return write_audio(path, synth_music(seconds, sr, seed), sr, channels)


def write_broken_files(folder: Path) -> dict[str, Path]:
    """Files with audio extensions that are not usable audio, by kind."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    files["empty"] = folder / "empty.wav"
    files["empty"].write_bytes(b"")
    files["random_bytes"] = folder / "noise.mp3"
    files["random_bytes"].write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    files["text"] = folder / "readme.flac"
    files["text"].write_text("this is not audio\n")
    files["too_short"] = write_audio(folder / "short.wav", np.zeros(100, np.float32))
    good = write_music(folder / "tmp_full.flac", seconds=2.0)
    files["truncated"] = folder / "truncated.flac"
    files["truncated"].write_bytes(good.read_bytes()[:200])
    good.unlink()
    return files


def write_labeled_music(path: Path, label: int, seconds: float = 2.0, seed: int = 0) -> Path:
    """Music whose tempo and a held drone depend on `label`: classes a linear probe can tell apart."""
    sr = 22050
    t = np.arange(int(seconds * sr)) / sr
    drone = 0.2 * np.sin(2 * np.pi * 110.0 * 2 ** (label * 5 / 12) * t)
    wave = synth_music(seconds, sr, seed, tempo=80.0 + 40.0 * label) + drone.astype(np.float32)
    return write_audio(path, (0.8 * wave / np.abs(wave).max()).astype(np.float32), sr)


def write_calm_busy_folder(root: Path, per_class: int = 10) -> Path:
    """A `<label>/<files>` dataset of two classes that `write_labeled_music` tells apart: calm, busy."""
    for label, name in enumerate(("calm", "busy")):
        for k in range(per_class):
            write_labeled_music(root / name / f"{name}{k}.wav", label, seed=label * 100 + k)
    return root


def make_corpus(root: Path, n: int = 6, seconds: float = 3.0) -> list[Path]:
    exts = [".wav", ".flac", ".ogg", ".mp3"]
    return [write_music(root / f"artist{i % 2}" / f"song {i}{exts[i % 4]}", seconds=seconds, sr=44100,
                        channels=1 + i % 2, seed=i) for i in range(n)]
