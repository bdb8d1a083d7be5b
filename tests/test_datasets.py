"""Dataset adapters on tiny trees laid out exactly like the official downloads."""

import csv
from collections import Counter
from pathlib import Path

import pytest

from s3t.data.datasets import (
    load_csv,
    load_dataset,
    load_fma,
    load_folder,
    load_gtzan,
    load_mtat,
)
from s3t.data.labeled_set import DatasetError, stratified_split, with_validation

SHARED_SPLITS = Path(__file__).resolve().parents[2] / "shared" / "splits"


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_packaged_gtzan_lists_are_the_published_ones():
    from importlib import resources

    for name in ("train_filtered.txt", "valid_filtered.txt", "test_filtered.txt"):
        packaged = resources.files("s3t").joinpath("splits", "gtzan", name).read_text()
        if SHARED_SPLITS.exists():
            assert packaged == (SHARED_SPLITS / "gtzan" / name).read_text()
    assert len(packaged.split()) == 290


def test_gtzan_fault_filtered_split(tmp_path):
    genres = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
    for g in genres:
        for k in range(100):
            touch(tmp_path / "genres" / g / f"{g}.{k:05d}.wav")
    ds = load_gtzan(tmp_path)
    assert ds.counts() == {"train": 443, "valid": 197, "test": 290}
    assert ds.classes == genres and not ds.multilabel
    first = ds.split("valid")[0]
    assert first.path == str(tmp_path / "genres" / "blues" / "blues.00000.wav") and first.labels == ("blues",)
    assert load_gtzan(tmp_path / "genres").counts() == ds.counts()  # the genres/ folder itself works too


def test_gtzan_au_files_and_missing_clips(tmp_path, caplog):
    touch(tmp_path / "genres" / "blues" / "blues.00000.au")
    touch(tmp_path / "genres" / "blues" / "blues.00029.wav")
    ds = load_gtzan(tmp_path)
    assert [Path(i.path).name for i in ds.items] == ["blues.00029.wav", "blues.00000.au"]
    assert "928 listed clips are missing" in caplog.text


def test_gtzan_wrong_root_shows_the_tree(tmp_path):
    with pytest.raises(DatasetError, match=r"genres/blues/blues.00000.wav"):
        load_gtzan(tmp_path)


def write_fma_tracks(path: Path, rows: list[tuple[int, str, str, str]]) -> None:
    """tracks.csv as FMA ships it: two header rows, then pandas' index-name row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["", "album", "set", "set", "track", "track"])
        w.writerow(["", "title", "split", "subset", "genre_top", "title"])
        w.writerow(["track_id", "", "", "", "", ""])
        for track_id, split, subset, genre in rows:
            w.writerow([track_id, "An album, with a comma", split, subset, genre, "x"])


def test_fma_small_split_labels_and_paths(tmp_path, caplog):
    write_fma_tracks(tmp_path / "fma_metadata" / "tracks.csv", [
        (2, "training", "small", "Hip-Hop"), (5, "validation", "small", "Rock"), (140, "test", "small", "Folk"),
        (99134, "training", "small", "Rock"), (3, "training", "medium", "Pop")])
    (tmp_path / "fma_small").mkdir()
    ds = load_fma(tmp_path)
    assert [(Path(i.path).relative_to(tmp_path).as_posix(), i.labels, i.split) for i in ds.items] == [
        ("fma_small/000/000002.mp3", ("Hip-Hop",), "train"), ("fma_small/000/000005.mp3", ("Rock",), "valid"),
        ("fma_small/000/000140.mp3", ("Folk",), "test")]
    assert ds.classes == ["Folk", "Hip-Hop", "Rock"]
    assert "099134 holds no audio" in caplog.text


def test_fma_wrong_root(tmp_path):
    with pytest.raises(DatasetError, match="fma_metadata/tracks.csv"):
        load_fma(tmp_path)


def write_mtat(root: Path, rows: list[tuple[str, dict[str, int]]], tags: list[str]) -> None:
    """annotations_final.csv as shipped: tab-separated, quoted, clip_id first and mp3_path last."""
    with open(root / "annotations_final.csv", "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_ALL)
        w.writerow(["clip_id"] + tags + ["mp3_path"])
        for n, (path, on) in enumerate(rows):
            w.writerow([n] + [on.get(t, 0) for t in tags] + [path])


def test_mtat_top_tags_by_frequency_and_folder_split(tmp_path):
    tags = ["rare", "guitar", "classical", "slow"]
    rows = [("0/a.mp3", {"guitar": 1, "slow": 1}), ("b/b.mp3", {"guitar": 1, "classical": 1}),
            ("c/c.mp3", {"guitar": 1, "rare": 1}), ("d/d.mp3", {"slow": 1}), ("f/e.mp3", {})]
    write_mtat(tmp_path, rows, tags)
    (tmp_path / "mp3").mkdir()
    ds = load_mtat(tmp_path, n_tags=3)
    assert ds.multilabel and ds.classes == ["guitar", "slow", "rare"]  # frequency, then file order on ties
    assert [i.split for i in ds.items] == ["train", "train", "valid", "test", "test"]
    assert ds.items[0].labels == ("guitar", "slow") and ds.items[4].labels == ()  # tagless clips are kept
    assert ds.items[0].path == str(tmp_path / "mp3" / "0" / "a.mp3")


def test_mtat_comma_separated_file_is_refused(tmp_path):
    (tmp_path / "annotations_final.csv").write_text("clip_id,guitar,mp3_path\n0,1,0/a.mp3\n")
    with pytest.raises(DatasetError, match="tab-separated"):
        load_mtat(tmp_path)


def test_folder_dataset_is_split_per_label_with_the_seed(tmp_path):
    for label, n in (("jazz", 10), ("rock", 20)):
        for k in range(n):
            touch(tmp_path / label / "sub" / f"{k}.wav")
    touch(tmp_path / "rock" / "notes.txt")
    ds = load_folder(tmp_path, seed=3)
    assert ds.classes == ["jazz", "rock"] and len(ds.items) == 30
    per = Counter((i.labels[0], i.split) for i in ds.items)
    assert per == {("jazz", "train"): 7, ("jazz", "valid"): 1, ("jazz", "test"): 2,
                   ("rock", "train"): 14, ("rock", "valid"): 2, ("rock", "test"): 4}
    assert [i.split for i in load_folder(tmp_path, seed=3).items] == [i.split for i in ds.items]
    assert [i.split for i in load_folder(tmp_path, seed=4).items] != [i.split for i in ds.items]


def test_csv_multilabel_relative_paths_and_given_split(tmp_path):
    (tmp_path / "m.csv").write_text("path,label,split\na.wav,rock;live,train\n/abs/b.wav,jazz,test\n"
                                    "c.wav,jazz,valid\n")
    ds = load_csv(tmp_path / "m.csv")
    assert ds.multilabel and ds.classes == ["jazz", "live", "rock"]
    assert ds.items[0].path == str(tmp_path / "a.wav") and ds.items[0].labels == ("rock", "live")
    assert ds.items[1].path == "/abs/b.wav" and [i.split for i in ds.items] == ["train", "test", "valid"]


@pytest.mark.parametrize("text, message", [
    ("file,genre\na.wav,rock\n", "expected a CSV with a header 'path,label"),
    ("path,label,split\na.wav,rock,training\n", "split 'training'"),
    ("path,label,split\na.wav,rock,train\nb.wav,rock,\n", "some rows have a split"),
])
def test_csv_errors_name_the_problem(tmp_path, text, message):
    (tmp_path / "m.csv").write_text(text)
    with pytest.raises(DatasetError, match=message):
        load_csv(tmp_path / "m.csv")


def test_stratified_split_keeps_every_label_in_train():
    labels = ["a"] * 3 + ["b"] * 1 + ["c"] * 50
    splits = stratified_split(labels, seed=0)
    assert {s for lab, s in zip(labels, splits) if lab == "b"} == {"train"}
    assert Counter(s for lab, s in zip(labels, splits) if lab == "c") == {"train": 35, "valid": 5, "test": 10}


def test_unknown_dataset_kind():
    with pytest.raises(DatasetError, match="expected one of gtzan, fma, mtat, folder, csv"):
        load_dataset("imagenet", "/tmp")


def test_validation_is_held_out_of_train_when_missing(tmp_path):
    rows = "".join(f"{k}.wav,{'ab'[k % 2]},{'train' if k < 40 else 'test'}\n" for k in range(50))
    (tmp_path / "m.csv").write_text("path,label,split\n" + rows)
    ds = with_validation(load_csv(tmp_path / "m.csv"), seed=1)
    assert ds.counts() == {"train": 36, "valid": 4, "test": 10}
    assert Counter(i.labels[0] for i in ds.split("valid")) == {"a": 2, "b": 2}
    assert [i.split for i in with_validation(load_csv(tmp_path / "m.csv"), 1).items] == [i.split for i in ds.items]
    assert with_validation(ds) is ds


def test_item_paths_are_absolute_from_a_relative_root(tmp_path, monkeypatch):
    touch(tmp_path / "data" / "rock" / "a.wav")
    monkeypatch.chdir(tmp_path)
    assert load_folder("data").items[0].path == str(tmp_path / "data" / "rock" / "a.wav")


def test_every_loader_takes_the_split_seed_so_none_is_called_by_name():
    import inspect

    from s3t.data.datasets import LOADERS

    for name, loader in LOADERS.items():
        assert inspect.signature(loader).parameters["seed"].default == 0, name
