"""`python -m engine` runs the vram-eval command line."""

import sys

from .cli import main

sys.exit(main())
