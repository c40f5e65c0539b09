"""Reports across runs: load, summarise with intervals, draw, render (Markdown and self-contained HTML)."""
