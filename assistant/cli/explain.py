"""`shopsight explain EVIDENCE_ID`: print and save the evidence pack of one turn."""

from __future__ import annotations

import html
import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from assistant.cli.common import JsonOption, build_components, print_json, user_errors
from assistant.turn.schemas import EvidencePack

console = Console()
REPORT_FILE = "report.html"


def report_html(pack: EvidencePack) -> str:
    """One self-contained page for a person: decision, sources, highlights, heatmaps."""
    esc = html.escape
    reasons = "".join(
        f"<li>{esc(r)}</li>" for r in (pack.decision.reasons if pack.decision else [])
    )
    sources = "".join(
        f"<li>[{c.number}] <b>{esc(c.title)}</b> ({esc(c.source_id)}): {esc(c.snippet)}</li>"
        for c in pack.citations
    )
    products = "".join(
        f"<li>{esc(p.title)} ({esc(p.product_id)}), confidence {p.confidence:.2f}</li>"
        for p in pack.products
    )
    highlights = "".join(
        f"<h3>{esc(a.target)} ({esc(a.model)})</h3>{a.html}" for a in pack.attributions
    )
    heatmaps = "".join(
        f'<figure><img src="{esc(h.file)}" alt="{esc(h.title)}" style="max-width:100%">'
        f"<figcaption>{esc(h.title)} (score {h.score:.3f})</figcaption></figure>"
        for h in pack.heatmaps
    )
    action = pack.decision.action if pack.decision else "?"
    return (
        f'<!doctype html><html lang="{esc(pack.language)}"><meta charset="utf-8">'
        f"<title>Evidence {esc(pack.evidence_id)}</title><body style='font-family:sans-serif'>"
        f"<h1>Evidence {esc(pack.evidence_id)}</h1><p><b>Customer:</b> {esc(pack.text)}</p>"
        f"<p><b>Reply:</b> {esc(pack.reply)}</p><h2>Decision: {esc(action)}</h2><ul>{reasons}</ul>"
        f"<h2>Sources</h2><ul>{sources}</ul><h2>Products</h2><ul>{products}</ul>"
        f"<h2>Why (word attributions)</h2>{highlights}<h2>Why (photo)</h2>{heatmaps}</body></html>"
    )


def _render(pack: EvidencePack, folder: Path) -> None:
    console.print(f"[bold]Evidence {pack.evidence_id}[/] ({pack.status}, {pack.seconds:.1f} s)")
    if pack.error:
        console.print(f"[red]explanations failed: {pack.error}[/]")
    console.print(f"customer: {pack.text}\nreply: {pack.reply}")
    if pack.decision:
        console.print(f"decision: {pack.decision.action}: {'; '.join(pack.decision.reasons)}")
    if pack.sentiment_trend:
        trend = " → ".join(f"{t:+.2f}" for t in pack.sentiment_trend)
        console.print(f"sentiment trend: {trend}")
    for attribution in pack.attributions:
        ranked = sorted(
            zip(attribution.tokens, attribution.values, strict=True), key=lambda tv: -abs(tv[1])
        )[:5]
        words = ", ".join(f"{token} {value:+.3f}" for token, value in ranked)
        console.print(
            f"{attribution.target} = {attribution.output:+.3f} ({attribution.output_name}): {words}"
        )
    for heatmap in pack.heatmaps:
        console.print(f"heatmap: {heatmap.title} → {folder / heatmap.file}")
    console.print(f"report: {folder / REPORT_FILE}")


def register(app: typer.Typer) -> None:
    @app.command("explain")
    def explain(
        evidence_id: Annotated[
            str, typer.Argument(help="The evidence id of a turn (in its TurnResult).")
        ],
        out: Annotated[
            Path | None,
            typer.Option(help="Copy the pack (JSON, heatmaps, report.html) to this folder."),
        ] = None,
        recompute: Annotated[
            bool, typer.Option(help="Compute the explanations again even if cached.")
        ] = False,
        as_json: JsonOption = False,
    ) -> None:
        """Explain one turn: SHAP word attributions, Grad-CAM heatmaps, sources and reasons."""
        with user_errors():
            evidence = build_components().evidence
            try:
                pack = evidence.explain(evidence_id, recompute=recompute)
            except KeyError as exc:
                raise FileNotFoundError(
                    f"no turn has evidence id {evidence_id!r}: every TurnResult carries its "
                    "evidence_id (`shopsight chat --script` prints them)"
                ) from exc
            folder = evidence.folders.folder(evidence_id)
            (folder / REPORT_FILE).write_text(report_html(pack), encoding="utf-8")
            if out is not None:
                shutil.copytree(folder, out, dirs_exist_ok=True)
                folder = out
        if as_json:
            print_json(pack.model_dump(mode="json"))
        else:
            _render(pack, folder)
        if pack.status == "failed":
            raise typer.Exit(1)
