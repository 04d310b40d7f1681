"""``python -m flarelib``: the same command line as ``flarelib`` (:mod:`flarelib.cli`)."""

import sys

from flarelib.cli import main

sys.exit(main())
