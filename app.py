"""Entry point of the web application (`python app.py`)."""

from __future__ import annotations

import sys


def main() -> int:
    """Until the web service exists, point to what works today."""
    sys.stderr.write(
        "The web app is not available yet; use `shopsight demo` or `shopsight kb --help`.\n"
    )
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
