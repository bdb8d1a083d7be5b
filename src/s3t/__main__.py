import sys

from s3t.cli import main

sys.exit(main())
