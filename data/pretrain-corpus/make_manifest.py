"""Write the manifest (path,package,duration_s) of the pre-training corpus: every audio file of at
least 30 s in the given Debian packages, and the OGG files inside their zip archives (0 A.D. keeps its
soundtrack in public.zip), unpacked into UNPACK_DIR. No labels: this corpus is for pre-training only.

Usage: python make_manifest.py OUT.csv UNPACK_DIR PACKAGE...     (build.sh installs the packages first)
"""
import csv
import os
import subprocess
import sys
import zipfile

import soundfile as sf

DEV = {"colobot-common-sounds", "hedgewars-data", "supertux-data", "freedroidrpg-data", "xmoto-data",
       "extremetuxracer-data"}
RESERVED = {"wesnoth-1.16-music", "warzone2100-music", "nexuiz-music", "ufoai-music", "hyperrogue-music",
            "drascula-music", "planetblupi-music-ogg", "singularity-music", "fretsonfire-songs-muldjord",
            "fretsonfire-songs-sectoid", "asc-music"}
AUDIO = (".ogg", ".opus", ".mp3", ".flac", ".wav")
MIN_SECONDS = 30.0
MIN_ZIPPED_BYTES = 300_000  # an OGG this small is a sound effect, not music


def files_of(package: str, unpack: str):
    listing = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=True).stdout
    for path in sorted(listing.splitlines()):
        if path.lower().endswith(AUDIO) and os.path.isfile(path):
            yield path
        elif path.lower().endswith((".zip", ".pk3")) and os.path.isfile(path):
            yield from unzipped(path, os.path.join(unpack, package))


def unzipped(archive: str, folder: str):
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            if info.filename.lower().endswith(".ogg") and info.file_size >= MIN_ZIPPED_BYTES:
                target = os.path.join(folder, info.filename)
                if not (os.path.isfile(target) and os.path.getsize(target) == info.file_size):
                    z.extract(info, folder)
                yield target


def main(out: str, unpack: str, packages: list[str]) -> None:
    refused = sorted(set(packages) & (DEV | RESERVED))
    if refused:
        sys.exit(f"refusing {', '.join(refused)}: dev-corpus or reserved packages")
    rows = []
    for package in packages:
        found = []
        for path in files_of(package, unpack):
            try:
                seconds = sf.info(path).duration
            except RuntimeError:
                continue  # not decodable by soundfile (e.g. tracker modules): not in the corpus
            if seconds >= MIN_SECONDS:
                found.append({"path": path, "package": package, "duration_s": round(seconds, 1)})
        rows += found
        print(f"{package:24s} tracks={len(found):3d} minutes={sum(r['duration_s'] for r in found) / 60:6.1f}")
    with open(out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["path", "package", "duration_s"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} tracks, {sum(r['duration_s'] for r in rows) / 3600:.2f} h -> {out}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
