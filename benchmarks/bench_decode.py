"""Decoding: soundfile (libsndfile) against FFmpeg (PyAV) on the same files, timed side by side, to
show why soundfile stays first wherever it reads the file.

    .venv/bin/python benchmarks/bench_decode.py --manifest /tmp/realmusic-dev.csv [--files 30]
"""

from __future__ import annotations

import argparse
import csv
import json
import time

from s3t.audio.decode import _read_ffmpeg, _read_soundfile


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manifest", required=True, help="a CSV with a 'path' column (the real-music dev corpus)")
    p.add_argument("--files", type=int, default=30)
    args = p.parse_args()
    paths = [row["path"] for row in csv.DictReader(open(args.manifest))][: args.files]
    seconds = {"soundfile": 0.0, "ffmpeg": 0.0}
    audio_s = 0.0
    for path in paths:  # alternate the two on each file, so that both see the same cache state
        for name, read in (("soundfile", _read_soundfile), ("ffmpeg", _read_ffmpeg)):
            start = time.perf_counter()
            data, rate = read(path, 0.0, None)
            seconds[name] += time.perf_counter() - start
        audio_s += len(data) / rate
    print(json.dumps({"files": len(paths), "audio_hours": audio_s / 3600, "seconds": seconds,
                      "ffmpeg_over_soundfile": seconds["ffmpeg"] / seconds["soundfile"]}, indent=2))


if __name__ == "__main__":
    main()
