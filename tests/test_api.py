import subprocess
import sys

import s3t


def test_every_api_name_resolves_to_a_function():
    for name in s3t._API:
        assert callable(getattr(s3t, name)), name


def test_importing_s3t_does_not_import_torch():  # `s3t --help` must answer at once
    code = "import sys, s3t; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
