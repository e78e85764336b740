"""The knowledge-base tab: statistics, search, and upload of catalogues or zips of images."""

from __future__ import annotations

from contextlib import ExitStack
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
        if not self.gate.allows(key, "admin"):
            return "<div>Enter an admin key in the 'Staff key' field to see statistics.</div>"
        return kb_stats_html(self.components.kb.stats())

    def search(self, text: str, photo: str | None, k: float) -> str:
        """Products by photo when one is given, else articles and products by text (hybrid
        text search fused with photo evidence, as `/v1/search/text` and `kb search` do)."""
        from retrieval.search.hybrid import SearchFilters

        kb = self.components.kb
        count = int(k)
        if photo:
            from knowledge_base.images import ImageRejected, load_image

            settings = self.components.settings
            try:
                image = load_image(Path(photo), settings.max_image_pixels, settings.max_image_side)
            except ImageRejected as exc:
                raise gr.Error(str(exc)) from exc
            return search_results_html(kb.search_photo(image, count).matches, [])
        query = (text or "").strip()
        if not query:
            raise gr.Error("Type something to search for, or give a photo.")
        found = kb.search_text(query, count, SearchFilters(), SearchFilters())
        return search_results_html(found.products, found.articles)

    def ingest(
        self, key: str | None, files: list[str] | None, progress: Any = None
    ) -> tuple[str, str]:
        """Ingest each upload (a catalogue or a zip) through the same service, guards and
        ingest lock as `POST /v1/kb/ingest`; the ingestor's tqdm bars drive the progress bar."""
        from assistant.services.kb import IngestBusy, Upload, UploadRejected

        self.gate.check(key, "admin")
        if not files:
            raise gr.Error("Choose a catalogue file (JSON, JSONL, CSV, Markdown) or a zip first.")
        if progress is not None:
            progress(0.0, desc="Checking the upload")
        try:
            with ExitStack() as stack:
                uploads = [
                    Upload(Path(file).name, stack.enter_context(Path(file).open("rb")))
                    for file in files
                ]
                done = self.components.kb.ingest_uploads(uploads, progress=True)
        except IngestBusy as exc:
            raise gr.Error(str(exc)) from exc
        except UploadRejected as exc:
            raise gr.Error(f"{exc.filename}: {exc.message}") from exc
        kept = [str(folder) for folder in done.kept_folders]
        return ingest_report_html(done.report, kept), self.stats(key)


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
