"""Routers for per-task adapters: which adapter scores an input when nobody says which task it is.

``method=adapters`` keeps one LoRA adapter per stream task on an untouched base. Its ``route`` picks
the adapter per input at evaluation (:mod:`forgetbench.evaluation.routed_lm`):

- ``oracle``: told the stream task of every held-out item (today's measurement, kept to compare);
- ``keyword``: rules from config, pattern → task (:mod:`.keyword`);
- ``classifier``: a linear probe on the frozen base's features of each task's training prompts
  (:mod:`.classifier`);
- ``learned``: a gate over the adapters trained with each task (:mod:`.learned`).

A route is a stream task's name (its adapter), :data:`BASE` (no adapter) or :data:`MERGE` (every
trained adapter at once).
"""

from __future__ import annotations

BASE = "base"
MERGE = "merge"
