"""The REST API (FastAPI) with the Gradio UI mounted on the same app."""

from assistant.api.app import create_app

__all__ = ["create_app"]
