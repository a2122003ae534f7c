from nantian.cli import main
import sys

sys.exit(main())
