"""`python -m curator.cli ...`, the same as the `curator` script."""

import sys

from curator.cli.main import main

sys.exit(main())
