"""`python -m bench`: the same as `python bench/run.py`."""

import sys

from bench.main import main

sys.exit(main())
