"""Entry point of the benchmark (`make bench`, `.venv/bin/python bench/run.py --quick`): see bench/README.md.

The harness is the `bench` package next to this file; `python -m bench` is the same thing.
"""

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# Run as a script, Python puts bench/ itself first on sys.path, where the package's modules (main,
# server, report, ...) would be importable as top-level modules: import them as the `bench` package
# from the project root instead (which also makes the service's `app` package importable).
if sys.path and Path(sys.path[0] or ".").resolve() == _HERE:
    sys.path.pop(0)
sys.path.insert(0, str(_HERE.parent))

from bench.main import main  # noqa: E402  (after the sys.path set-up above)

if __name__ == "__main__":
    sys.exit(main())
