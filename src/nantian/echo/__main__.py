"""``python -m nantian.echo``: the same as ``nantian echo``."""

import sys

from nantian.echo import main

raise SystemExit(main(sys.argv[1:]))
