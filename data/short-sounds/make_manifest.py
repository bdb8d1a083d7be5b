"""The short-sound dev task (issue 28): single drum strokes from Debian's hydrogen-drumkits, labelled by
instrument from the file name, split by kit so that test kits are never heard in training.

    python3 make_manifest.py OUT.csv [DRUMKITS folder, default /usr/share/hydrogen/data/drumkits]

Writes path,label,split,kit,duration_s. Files whose name says no instrument, or more than one, are left out.
"""

import csv
import re
import sys
from pathlib import Path

import soundfile as sf

INSTRUMENTS = {  # label: a pattern of the file name (lower case)
    "kick": r"kick|bassdrum|\bbd|_bd|^bd|k_\d|_k_",
    "snare": r"snare|\bsd|^sd|_sn|^sn",
    "hihat": r"hat|\bhh|^hh|chh|ohh",
    "cymbal": r"crash|ride|china|splash|cymbal|^cc_",
    "tom": r"tom|^ft_|^ht_|^mt_",
    "clap": r"clap",
}
TEST_KITS = {"ElectricEmpireKit", "Millo_MultiLayered3", "The Black Pearl 1.0"}
VALID_KITS = {"HardElectro1", "Millo-Drums_v.1"}


def label_of(name: str) -> str | None:
    found = [label for label, pattern in INSTRUMENTS.items() if re.search(pattern, name.lower())]
    return found[0] if len(found) == 1 else None


def main() -> None:
    out = Path(sys.argv[1])
    root = Path(sys.argv[2] if len(sys.argv) > 2 else "/usr/share/hydrogen/data/drumkits")
    rows = []
    for path in sorted(root.glob("*/*")):
        label = label_of(path.stem) if path.suffix.lower() in (".wav", ".flac", ".aiff") else None
        if label is None:
            continue
        kit = path.parent.name
        split = "test" if kit in TEST_KITS else "valid" if kit in VALID_KITS else "train"
        rows.append({"path": str(path), "label": label, "split": split, "kit": kit,
                     "duration_s": f"{sf.info(str(path)).duration:.3f}"})
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} sounds -> {out}")


if __name__ == "__main__":
    main()
