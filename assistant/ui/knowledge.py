"""The knowledge-base tab: statistics, search, and upload of catalogues or zips of images."""

from __future__ import annotations

import copy
import dataclasses
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from assistant.ui.access import StaffGate
from assistant.ui.render import ingest_report_html, kb_stats_html, search_results_html

if TYPE_CHECKING:
    from assistant.components import Components

UPLOAD_SUFFIXES = [".json", ".jsonl", ".csv", ".md", ".markdown", ".zip"]


class KnowledgeTab:
    def __init__(self, components: Components, gate: StaffGate) -> None:
        self.components = components
        self.gate = gate

    def stats(self, key: str | None) -> str:
        """The store's counts; like `GET /v1/kb/stats` they need an admin key when keys are set."""
        from knowledge_base.admin import kb_stats

        if not self.gate.allows(key, "admin"):
            return "<div>Enter an admin key in the 'Staff key' field to see statistics.</div>"

        return kb_stats_html(kb_stats(self.components.store))

    def search(self, text: str, photo: str | None, k: float) -> str:
        """Products by photo when one is given, else articles and products by text (hybrid)."""
        components = self.components
        count = int(k)
        if photo:
            from knowledge_base.images import ImageRejected, load_image

            settings = components.settings
            try:
                image = load_image(Path(photo), settings.max_image_pixels, settings.max_image_side)
            except ImageRejected as exc:
                raise gr.Error(str(exc)) from exc
            return search_results_html(components.search_photo(image, count).matches, [])
        query = (text or "").strip()
        if not query:
            raise gr.Error("Type something to search for, or give a photo.")
        searcher = components.hybrid_searcher
        return search_results_html(
            searcher.products(query, k=count), searcher.articles(query, k=count)
        )

    def ingest(
        self, key: str | None, files: list[str] | None, progress: Any = None
    ) -> tuple[str, str]:
        """Store, check and ingest each upload (a catalogue or a zip) with the same guards as
        `POST /v1/kb/ingest`; the ingestor's tqdm bars drive the progress bar."""
        from assistant.api.errors import ApiError
        from assistant.api.kb_upload import load_upload, relative_rejections
        from knowledge_base.loaders import LoadResult

        self.gate.check(key, "admin")
        if not files:
            raise gr.Error("Choose a catalogue file (JSON, JSONL, CSV, Markdown) or a zip first.")
        settings = self.components.settings
        limit = int(settings.max_ingest_mb * 1024 * 1024)
        loaded = LoadResult()
        folders: list[tuple[Path, bool]] = []
        try:
            for number, file in enumerate(files):
                path = Path(file)
                if progress is not None:
                    progress(0.05 * number / len(files), desc=f"Checking {path.name}")
                if path.stat().st_size > limit:
                    raise gr.Error(
                        f"{path.name}: {path.stat().st_size / 1024**2:.1f} MB > "
                        f"{settings.max_ingest_mb:g} MB limit (SHOPSIGHT_MAX_INGEST_MB)"
                    )
                try:
                    with path.open("rb") as stream:
                        upload = load_upload(
                            stream,
                            path.name,
                            settings.data_dir / "uploads",
                            int(settings.max_ingest_unzipped_mb * 1024 * 1024),
                        )
                except ApiError as exc:
                    raise gr.Error(f"{path.name}: {exc.message}") from exc
                loaded.extend(upload.loaded)
                folders.append((upload.folder, upload.kind == "zip"))
        except BaseException:
            # One refused file refuses the whole upload: nothing of it is kept.
            for folder, _ in folders:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        # A copy of the shared ingestor with its tqdm bars on, which gr.Progress follows.
        ingestor = copy.copy(self.components.ingestor)
        ingestor.options = dataclasses.replace(ingestor.options, progress=True)
        report = ingestor.ingest(loaded)
        for folder, keep in folders:
            report.rejections = relative_rejections(report.rejections, folder)
            if not keep:
                # A lone catalogue's records are in the store now; only a zip's images must stay.
                shutil.rmtree(folder, ignore_errors=True)
        kept = [str(folder) for folder, keep in folders if keep]
        return ingest_report_html(report, kept), self.stats(key)


def build_knowledge_tab(
    components: Components, gate: StaffGate, key: gr.Textbox
) -> tuple[gr.HTML, KnowledgeTab]:
    """The widgets and events of the tab; returns the stats panel (refreshed when opened)."""
    tab = KnowledgeTab(components, gate)
    with gr.Row():
        stats = gr.HTML(elem_id="kb-stats")
        with gr.Column(scale=0, min_width=120):
            refresh = gr.Button("Refresh", elem_id="kb-refresh", size="sm")
    gr.Markdown("### Search")
    with gr.Row():
        with gr.Column(scale=3):
            query = gr.Textbox(
                label="Search articles and products",
                elem_id="kb-query",
                placeholder="e.g. return policy",
            )
            k = gr.Slider(1, 20, value=5, step=1, label="Results", elem_id="kb-k")
            search = gr.Button("Search", elem_id="kb-search")
        photo = gr.Image(
            type="filepath",
            sources=["upload"],
            label="…or find products by photo (used when given)",
            elem_id="kb-photo",
            height=180,
            scale=1,
        )
    results = gr.HTML(elem_id="kb-results")
    gr.Markdown(
        "### Upload\nA catalogue (JSON, JSONL, CSV incl. Shopify exports), Markdown articles, or "
        "a zip (a catalogue with its images, or images in one folder per category)."
    )
    files = gr.File(
        file_count="multiple", file_types=UPLOAD_SUFFIXES, label="Files", elem_id="kb-upload"
    )
    ingest = gr.Button("Ingest", variant="primary", elem_id="kb-ingest")
    report = gr.HTML(elem_id="kb-ingest-report")

    def ingest_with_progress(
        staff_key: str | None,
        uploaded: list[str] | None,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> tuple[str, str]:
        return tab.ingest(staff_key, uploaded, progress)

    refresh.click(tab.stats, inputs=[key], outputs=[stats])
    search.click(tab.search, inputs=[query, photo, k], outputs=[results])
    query.submit(tab.search, inputs=[query, photo, k], outputs=[results])
    ingest.click(ingest_with_progress, inputs=[key, files], outputs=[report, stats])
    return stats, tab
