"""Evaluation reports: every task writes the same Markdown + JSON pair and returns the data."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field


class EvalReport(BaseModel):
    """Metrics of one evaluation run plus what it ran on, so a number can be reproduced."""

    task: str
    data: str
    metrics: dict[str, float]
    details: dict[str, Any] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)
    seconds: float = 0.0
    created: str = Field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    files: list[str] = Field(default_factory=list)

    def write(self, out_dir: Path) -> tuple[Path, Path]:
        """Write `<task>.json` and `<task>.md` under `out_dir`; returns both paths."""
        out_dir.mkdir(parents=True, exist_ok=True)
        json_path = out_dir / f"{self.task}.json"
        md_path = out_dir / f"{self.task}.md"
        self.files = sorted({*self.files, str(json_path), str(md_path)})
        json_path.write_text(self.model_dump_json(indent=2), encoding="utf-8")
        md_path.write_text(self.to_markdown(), encoding="utf-8")
        return json_path, md_path

    def to_markdown(self) -> str:
        lines = [
            f"# Evaluation: {self.task}",
            "",
            f"- data: `{self.data}`",
            f"- time: {self.seconds:.1f} s",
            "",
        ]
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {name} | {value:.4f} |" for name, value in self.metrics.items()]
        if self.settings:
            lines += ["", "## Settings", ""]
            lines += [f"- {key}: `{value}`" for key, value in self.settings.items()]
        for key, value in self.details.items():
            lines += ["", f"## {key}", ""]
            if isinstance(value, str):
                lines.append(value)
            else:
                lines += [
                    "```json",
                    json.dumps(value, ensure_ascii=False, indent=2, default=_jsonable),
                    "```",
                ]
        return "\n".join(lines) + "\n"


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def ranking_metrics(ranks: list[int | None], ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """recall@k and MRR from the 1-based rank of the right answer per query (None = not found)."""
    total = max(len(ranks), 1)
    metrics = {f"recall@{k}": sum(1 for r in ranks if r is not None and r <= k) / total for k in ks}
    metrics["mrr"] = sum(1.0 / r for r in ranks if r is not None) / total
    metrics["queries"] = float(len(ranks))
    return metrics
