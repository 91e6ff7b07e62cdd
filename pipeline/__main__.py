"""`python -m pipeline <stage>` entry point."""

import sys

from pipeline.cli import main

sys.exit(main())
