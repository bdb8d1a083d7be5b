"""The pre-training corpus builder (data/pretrain-corpus): never the dev corpus's nor the reserved
packages, and the soundtracks it unpacks from zip archives are real, decodable music files."""

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf

FOLDER = Path(__file__).parent.parent / "data" / "pretrain-corpus"


def builder():
    spec = importlib.util.spec_from_file_location("make_manifest", FOLDER / "make_manifest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_package_list_avoids_the_dev_corpus_and_the_reserved_packages():
    mm = builder()
    listed = [line.split()[0] for line in (FOLDER / "packages.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert len(listed) == len(set(listed)) >= 40
    assert not set(listed) & (mm.DEV | mm.RESERVED)
    assert "wesnoth-1.16-music" in mm.RESERVED and "supertux-data" in mm.DEV


def test_a_reserved_package_is_refused(tmp_path):
    run = subprocess.run([sys.executable, str(FOLDER / "make_manifest.py"), str(tmp_path / "m.csv"), str(tmp_path),
                          "naev-data", "asc-music"], capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and "refusing asc-music" in run.stderr
    assert not (tmp_path / "m.csv").exists()


def test_music_inside_a_zip_is_unpacked_once_and_small_sounds_are_left(tmp_path):
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "song.ogg", rng.uniform(-0.5, 0.5, 22050 * 60).astype(np.float32), 22050)
    sf.write(tmp_path / "click.ogg", rng.uniform(-0.5, 0.5, 2205).astype(np.float32), 22050)
    archive = tmp_path / "public.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(tmp_path / "song.ogg", "audio/music/song.ogg")
        z.write(tmp_path / "click.ogg", "audio/sfx/click.ogg")
    out = tmp_path / "unpacked"
    found = list(builder().unzipped(str(archive), str(out)))
    assert found == [str(out / "audio/music/song.ogg")]
    assert sf.info(found[0]).duration == 60.0
    stamp = Path(found[0]).stat().st_mtime_ns
    assert list(builder().unzipped(str(archive), str(out))) == found  # a second run reuses the file
    assert Path(found[0]).stat().st_mtime_ns == stamp
