"""Reports across runs: load (load.py), summarise with intervals (summary.py, bootstrap.py), draw
(figures.py), render as Markdown and self-contained HTML (render.py); report.py puts them together,
cli.py is ``forgetbench report``, callback.py writes a multirun's report."""
