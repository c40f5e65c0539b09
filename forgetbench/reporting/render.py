"""Render a report's tables and figures as Markdown and as one self-contained HTML file."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field

import pandas as pd


@dataclass
class Section:
    title: str
    text: str = ""
    table: pd.DataFrame | None = None
    figure: str | None = None  # file name of a PNG beside the report


@dataclass
class Report:
    title: str
    sections: list[Section] = field(default_factory=list)


def mark_best(table: pd.DataFrame, better: dict[str, str]) -> pd.DataFrame:
    """Format numbers; the best value of each column ``better`` names ("lower" or "higher": which way
    it is better, declared where the column is made) gets a trailing ★."""
    shown = table.copy().astype(object)
    for column in table.columns:
        values = pd.to_numeric(table[column], errors="coerce")
        if values.isna().all() or table[column].dtype == bool:
            continue
        best = {"lower": values.min(), "higher": values.max()}.get(better.get(column, ""))
        shown[column] = [_fmt(v) + (" ★" if best is not None and len(values) > 1 and v == best else "") for v in values]
    return shown


def _fmt(value) -> str:
    if isinstance(value, float):
        return "" if pd.isna(value) else f"{value:.3f}"
    return str(value)


def markdown_table(table: pd.DataFrame) -> str:
    # hand-written: pandas' to_markdown needs the optional tabulate package
    table = table.reset_index() if table.index.name else table
    head = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "---|" * len(table.columns)
    body = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def to_markdown(report: Report) -> str:
    lines = [f"# {report.title}", ""]
    for section in report.sections:
        lines += [f"## {section.title}", ""]
        if section.text:
            lines += [section.text, ""]
        if section.table is not None:
            lines += [markdown_table(section.table), ""]
        if section.figure:
            lines += [f"![{section.title}]({section.figure})", ""]
    return "\n".join(lines)


def to_html(report: Report, folder) -> str:
    """One HTML file with every image embedded (readable offline, mailable)."""
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(report.title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;"
        "text-align:right}img{max-width:100%}</style></head><body>",
        f"<h1>{html.escape(report.title)}</h1>",
    ]
    for section in report.sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.text:
            parts.append("".join(f"<p>{html.escape(p)}</p>" for p in section.text.split("\n\n")))
        if section.table is not None:
            table = section.table.reset_index() if section.table.index.name else section.table
            parts.append(f"<div style='overflow-x:auto'>{table.map(_fmt).to_html(index=False, escape=True)}</div>")
        if section.figure:
            data = base64.b64encode((folder / section.figure).read_bytes()).decode()
            parts.append(f"<img alt='{html.escape(section.title)}' src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    return "\n".join(parts)
