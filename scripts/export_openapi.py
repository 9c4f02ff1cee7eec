"""Write the app's OpenAPI document to docs/openapi.yaml, or check that the committed file is current.

    python scripts/export_openapi.py            # (re)write docs/openapi.yaml
    python scripts/export_openapi.py --check    # exit 1 if docs/openapi.yaml differs from the app

The document comes from `app.main.create_app().openapi()` (see app/openapi.py); creating the app does
not touch a database. The YAML is deterministic: keys keep the document's order, no anchors.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

DEFAULT_OUTPUT = PROJECT_ROOT / "docs" / "openapi.yaml"
HEADER = "# Generated from the app by scripts/export_openapi.py; do not edit by hand (`make openapi`).\n"


class _NoAliasDumper(yaml.SafeDumper):  # type: ignore[misc]  # PyYAML ships no type hints
    """Never emit &anchors/*aliases, even if a sub-object appears twice."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    """Multi-line strings (the Markdown descriptions) as readable literal blocks."""
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_NoAliasDumper.add_representer(str, _represent_str)


def document() -> dict[str, Any]:
    from app.main import create_app

    spec: dict[str, Any] = create_app().openapi()
    return spec


def render(spec: dict[str, Any]) -> str:
    body: str = yaml.dump(spec, Dumper=_NoAliasDumper, sort_keys=False, allow_unicode=True, width=120)
    return HEADER + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is not what the app generates")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="default: docs/openapi.yaml")
    args = parser.parse_args(argv)

    expected = render(document())
    output: Path = args.output
    if args.check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current == expected:
            print(f"{output} is up to date")
            return 0
        diff = difflib.unified_diff(
            current.splitlines(keepends=True), expected.splitlines(keepends=True), str(output), "generated", n=2
        )
        sys.stdout.writelines(list(diff)[:200])
        print(f"\n{output} is out of date: run `python scripts/export_openapi.py`", file=sys.stderr)
        return 1
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(expected, encoding="utf-8")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
