"""``python -m nantian``: the nantian command."""

import sys

from nantian.cli import main

sys.exit(main())
