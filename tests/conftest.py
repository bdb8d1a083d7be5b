import csv
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

REALMUSIC_MANIFEST = Path(os.environ.get("S3T_REALMUSIC", "/tmp/realmusic-dev.csv"))


@pytest.fixture(scope="session")
def realmusic_paths() -> list[str]:
    """Paths of the real-music dev corpus (../shared/data/realmusic-dev), one per class."""
    if not REALMUSIC_MANIFEST.is_file():
        pytest.skip(f"real-music corpus not built ({REALMUSIC_MANIFEST}); .ci/run builds it")
    rows = list(csv.DictReader(open(REALMUSIC_MANIFEST)))
    by_label = {}
    for row in rows:
        by_label.setdefault(row["label"], row["path"])
    return list(by_label.values())
