"""Labeled datasets for the linear probe, read from the layouts of the official downloads.

Each loader returns a `LabeledSet` (`s3t.data.labeled_set`): its classes, whether it is multi-label, and every item's
audio path, labels and split ('train', 'valid' or 'test'). Nothing is downloaded. A root that
does not look like the download raises `DatasetError` with the expected tree.
"""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from importlib import resources
from pathlib import Path

from s3t.audio.decode import AUDIO_EXTENSIONS
from s3t.data.labeled_set import (
    SPLITS,
    DatasetError,
    Item,
    LabeledSet,
    stratified_split,
)

log = logging.getLogger(__name__)

def _absolute(path: str | Path) -> Path:
    """Items carry absolute paths: they name the same file from any working directory."""
    return Path(os.path.abspath(path))


def _packaged_lines(*parts: str) -> list[str]:
    text = resources.files("s3t").joinpath("splits", *parts).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _missing(root: Path, what: str, tree: str) -> DatasetError:
    return DatasetError(f"{root}: {what}. Expected the layout of the official download:\n{tree}")


# --- GTZAN -----------------------------------------------------------------------------------

GTZAN_TREE = """  ROOT/genres/blues/blues.00000.wav   (or .au; ROOT may also be the genres/ folder itself)
  ROOT/genres/classical/classical.00000.wav
  ... 10 genre folders, 100 clips each"""


def load_gtzan(root: str | Path, seed: int = 0) -> LabeledSet:
    """GTZAN with the fault-filtered split of Kereliuk et al. (443 / 197 / 290 clips); a fixed split, so
    `seed` draws nothing."""
    root = _absolute(root)
    genres = next((d for d in (root / "genres", root / "genres_original", root) if (d / "blues").is_dir()), None)
    if genres is None:
        raise _missing(root, "no genres/blues folder", GTZAN_TREE)
    items, absent = [], []
    for split, file in zip(SPLITS, ("train_filtered.txt", "valid_filtered.txt", "test_filtered.txt")):
        for rel in _packaged_lines("gtzan", file):
            path = genres / rel
            if not path.exists() and path.with_suffix(".au").exists():
                path = path.with_suffix(".au")
            if not path.exists():
                absent.append(rel)
                continue
            items.append(Item(str(path), (rel.split("/")[0],), split))
    if not items:
        raise _missing(root, "none of the split's 930 clips was found", GTZAN_TREE)
    if absent:
        log.warning("GTZAN: %d listed clips are missing under %s (e.g. %s); they are left out",
                    len(absent), genres, absent[0])
    return LabeledSet("gtzan", sorted({i.labels[0] for i in items}), False, items)


# --- FMA-small -------------------------------------------------------------------------------

FMA_TREE = """  ROOT/fma_metadata/tracks.csv      (two header rows, e.g. 'set,set' / 'split,subset')
  ROOT/fma_small/000/000002.mp3     (track id zero-padded to 6 digits, folder = first 3)"""
FMA_SPLITS = {"training": "train", "validation": "valid", "test": "test"}
FMA_NO_AUDIO = {99134, 108925, 133297}  # listed in tracks.csv, but their mp3s hold no audio


def _read_fma_tracks(path: Path) -> list[dict[str, str]]:
    """tracks.csv rows as dicts keyed 'section.column' (e.g. 'set.subset', 'track.genre_top')."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        try:
            top, sub = next(reader), next(reader)
        except StopIteration:
            raise _missing(path.parent.parent, f"{path} has fewer than two header rows", FMA_TREE) from None
        keys, section = [], ""
        for a, b in zip(top, sub):
            section = a or section
            keys.append(f"{section}.{b}")
        rows = []
        for row in reader:
            if row and row[0] == "track_id":  # pandas writes the index name on a row of its own
                continue
            rows.append({"track_id": row[0], **dict(zip(keys[1:], row[1:]))})
    missing = {"set.subset", "set.split", "track.genre_top"} - set(keys)
    if missing:
        raise _missing(path.parent.parent, f"{path} lacks the columns {sorted(missing)}", FMA_TREE)
    return rows


def load_fma(root: str | Path, seed: int = 0, subset: str = "small") -> LabeledSet:
    """FMA-small: the official training/validation/test split (`seed` draws nothing), label `track.genre_top`."""
    root = _absolute(root)
    tracks = root / "fma_metadata" / "tracks.csv"
    audio_dir = root / f"fma_{subset}"
    if not tracks.is_file():
        raise _missing(root, "no fma_metadata/tracks.csv", FMA_TREE)
    if not audio_dir.is_dir():
        raise _missing(root, f"no fma_{subset}/ audio folder", FMA_TREE)
    items = []
    for row in _read_fma_tracks(tracks):
        if row["set.subset"] != subset:
            continue
        track_id = int(row["track_id"])
        if track_id in FMA_NO_AUDIO:
            log.warning("FMA: track %06d holds no audio (a known fault of the download): left out", track_id)
            continue
        split = FMA_SPLITS.get(row["set.split"])
        if split is None:
            raise DatasetError(f"{tracks}: track {track_id} has set.split {row['set.split']!r}, "
                               f"expected one of {sorted(FMA_SPLITS)}")
        name = f"{track_id:06d}"
        items.append(Item(str(audio_dir / name[:3] / f"{name}.mp3"), (row["track.genre_top"],), split))
    if not items:
        raise _missing(root, f"tracks.csv lists no track of subset {subset!r}", FMA_TREE)
    return LabeledSet(f"fma_{subset}", sorted({i.labels[0] for i in items}), False, items, probe_batch=256)


# --- MagnaTagATune ---------------------------------------------------------------------------

MTAT_TREE = """  ROOT/annotations_final.csv   (tab-separated: clip_id, 188 tag columns, mp3_path)
  ROOT/mp3/0/...mp3 ... ROOT/mp3/f/...mp3   (or the folders 0-f directly under ROOT)"""
MTAT_SPLIT_OF_FOLDER = {**{c: "train" for c in "0123456789ab"}, "c": "valid", **{c: "test" for c in "def"}}


def load_mtat(root: str | Path, seed: int = 0, n_tags: int = 50) -> LabeledSet:
    """MagnaTagATune: the `n_tags` most frequent tags; folders 0-b train, c valid, d-f test (`seed` draws
    nothing)."""
    root = _absolute(root)
    annotations = root / "annotations_final.csv"
    if not annotations.is_file():
        raise _missing(root, "no annotations_final.csv", MTAT_TREE)
    audio_dir = root / "mp3" if (root / "mp3").is_dir() else root
    with open(annotations, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        fields = reader.fieldnames or []
        if "clip_id" not in fields or "mp3_path" not in fields:
            raise _missing(root, f"{annotations.name} has no clip_id/mp3_path columns (is it tab-separated?)",
                           MTAT_TREE)
        tags = [t for t in fields if t not in ("clip_id", "mp3_path")]
        rows = list(reader)
    frequency = Counter({t: sum(r[t] == "1" for r in rows) for t in tags})
    top = [t for t, _ in sorted(frequency.items(), key=lambda kv: (-kv[1], tags.index(kv[0])))[:n_tags]]
    published = set(_packaged_lines("mtat", "top50_tags.txt"))
    if n_tags == 50 and published <= set(tags) and set(top) != published:
        log.warning("MTAT: the top-50 by frequency differs from the published list in %d tags",
                    len(set(top) - published))
    items = []
    for r in rows:
        rel = r["mp3_path"]
        split = MTAT_SPLIT_OF_FOLDER.get(rel.split("/")[0])
        if split is None:
            raise DatasetError(f"{annotations}: clip {r['clip_id']} has mp3_path {rel!r}; expected a folder 0-f")
        items.append(Item(str(audio_dir / rel), tuple(t for t in top if r[t] == "1"), split))
    return LabeledSet("mtat", top, True, items, probe_batch=256)


# --- your own data ---------------------------------------------------------------------------

FOLDER_TREE = """  ROOT/<label>/<file>.wav   (any audio format; files may sit in subfolders of a label)"""
CSV_FORM = "a CSV with a header 'path,label[,split]' (';' between labels for multi-label; split train/valid/test)"


def load_folder(root: str | Path, seed: int = 0) -> LabeledSet:
    """`<label>/<files>`: one class per folder, a random stratified 70/10/20 split drawn with `seed`."""
    root = _absolute(root)
    if not root.is_dir():
        raise _missing(root, "not a folder", FOLDER_TREE)
    paths: list[tuple[str, str]] = []
    for label_dir in sorted(d for d in root.iterdir() if d.is_dir()):
        for folder, dirs, files in os.walk(label_dir):
            dirs.sort()
            paths += [(str(Path(folder) / f), label_dir.name) for f in sorted(files)
                      if f.lower().endswith(AUDIO_EXTENSIONS)]
    if not paths:
        raise _missing(root, "no audio files in label folders", FOLDER_TREE)
    splits = stratified_split([label for _, label in paths], seed)
    items = [Item(p, (label,), s) for (p, label), s in zip(paths, splits)]
    return LabeledSet(root.name, sorted({label for _, label in paths}), False, items)


def load_csv(path: str | Path, seed: int = 0) -> LabeledSet:
    """A manifest `path,label[,split]`; relative paths are read from the manifest's folder."""
    path = _absolute(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file; expected {CSV_FORM}")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"path", "label"} <= set(reader.fieldnames):
            raise DatasetError(f"{path}: header {reader.fieldnames}; expected {CSV_FORM}")
        rows = list(reader)
    if not rows:
        raise DatasetError(f"{path}: no rows; expected {CSV_FORM}")
    entries = []
    for line, row in enumerate(rows, start=2):
        labels = tuple(x.strip() for x in (row["label"] or "").split(";") if x.strip())
        split = (row.get("split") or "").strip()
        if split and split not in SPLITS:
            raise DatasetError(f"{path}:{line}: split {split!r}; expected one of {', '.join(SPLITS)} or empty")
        audio_path = row["path"] if os.path.isabs(row["path"]) else str(path.parent / row["path"])
        entries.append((audio_path, labels, split))
    multilabel = any(len(labels) != 1 for _, labels, _ in entries)
    if not all(split for _, _, split in entries):
        if any(split for _, _, split in entries):
            raise DatasetError(f"{path}: some rows have a split and others not; give all or none")
        drawn = stratified_split([";".join(labels) for _, labels, _ in entries], seed)
        entries = [(p, labels, s) for (p, labels, _), s in zip(entries, drawn)]
    items = [Item(p, labels, s) for p, labels, s in entries]
    return LabeledSet(path.stem, sorted({t for i in items for t in i.labels}), multilabel, items)


LOADERS = {"gtzan": load_gtzan, "fma": load_fma, "mtat": load_mtat, "folder": load_folder, "csv": load_csv}


def load_dataset(kind: str, root: str | Path, seed: int = 0) -> LabeledSet:
    """One of LOADERS by name; `seed` draws the split of data that has none (every loader takes it)."""
    if kind not in LOADERS:
        raise DatasetError(f"unknown dataset {kind!r}; expected one of {', '.join(LOADERS)}")
    return LOADERS[kind](root, seed=seed)
