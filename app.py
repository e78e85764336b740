"""Entry point of the web application: `python app.py` serves the REST API and the UI.

Settings come from SHOPSIGHT_* variables and `.env` (SHOPSIGHT_HOST, SHOPSIGHT_PORT, ...).
Another ASGI server can run the same app: `uvicorn --factory app:create_app`.
"""

from __future__ import annotations

from assistant.api import create_app


def main() -> int:
    from assistant.api.server import serve
    from assistant.cli.common import passive_openmp

    passive_openmp()
    serve()
    return 0


__all__ = ["create_app", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
