"""The three analyses of a finished run, from its results, its kept weights and its suite."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from datasets import Dataset

from forgetbench.analysis.cka import drift_table, layer_states
from forgetbench.analysis.models import RunModels, Weights
from forgetbench.analysis.probe import Dropped, dropped_tasks, held_apart, recovered_share, verdict
from forgetbench.analysis.settings import AnalysisSettings
from forgetbench.analysis.where import restore_table
from forgetbench.evaluation.lm_eval_bridge import LmEvalBridge
from forgetbench.metrics import primary_scores
from forgetbench.models import LoadedModel
from forgetbench.stream_records import StreamTask
from forgetbench.training import TrainConfig, train_on_task

log = logging.getLogger(__name__)


@dataclass
class AnalysedRun:
    """What the analyses read of one finished run.

    Attributes:
        rows: its results table; items: its per-item outcomes (every step).
        models: its models, rebuilt from kept weights files.
        bridge: its suite and stream's held-out items, as the run scored them.
        final_weights: the weights after its last step; step_weights: after each step, from step 0
            (empty when the run did not keep them).
    """

    rows: pd.DataFrame
    items: pd.DataFrame
    models: RunModels
    bridge: LmEvalBridge
    stream: list[StreamTask]
    train_config: TrainConfig
    final_weights: Path
    step_weights: list[Path]

    @property
    def general_tasks(self) -> list[str]:
        """The suite's tasks whose headline is a skill (acc, acc_norm, exact_match), as the bridge names them."""
        entries = {e.name for e in self.bridge.entries if not e.stream_task}
        general = primary_scores(self.rows[self.rows["eval_task"].isin(entries)])
        skills = general[general["metric"].isin(["acc", "acc_norm", "exact_match"])]
        return sorted(skills["eval_task"].unique())

    def general_score(self, loaded: LoadedModel, label: str) -> float:
        """The mean headline score of :attr:`general_tasks`."""
        tasks = self.general_tasks
        evaluation = self.bridge.evaluate(loaded, label, tasks=tasks)
        scores = primary_scores(pd.DataFrame([vars(s) for s in evaluation.scores]))
        return float(scores[scores["eval_task"].isin(tasks)]["value"].mean())


def recovery(run: AnalysedRun, settings: AnalysisSettings) -> pd.DataFrame:
    """The recovery probe (:mod:`.probe`) on every task that dropped by ``settings.min_drop``."""
    entries = {e.name for e in run.bridge.entries} | {e.stream_task for e in run.bridge.entries if e.stream_task}
    out = []
    for dropped in dropped_tasks(run.rows, settings.min_drop):
        if (dropped.stream_task or dropped.eval_task) not in entries:
            log.info(f"recovery probe: {dropped.eval_task} is a subtask of a group; probed with its group only")
            continue
        out.append(_probe(run, dropped, settings))
    return pd.DataFrame(out)


def _probe(run: AnalysedRun, dropped: Dropped, settings: AnalysisSettings) -> dict:
    items = run.items[run.items["eval_task"] == dropped.eval_task]
    if dropped.stream_task:  # its training rows: the scored items are held out of them already
        task = next(t for t in run.stream if t.name == dropped.stream_task)
        examples = task.train.select(range(min(settings.probe_examples, len(task.train))))
        scored = sorted(items.loc[items["step"] == dropped.reference_step, "doc_id"].unique())
    else:  # a seeded draw of its items to train on; the rest are scored
        documents = {d["doc_id"]: d for d in run.bridge.documents(dropped.eval_task)}
        train_ids, scored = held_apart(list(documents), settings.probe_examples, settings.seed)
        examples = Dataset.from_list([{k: documents[i][k] for k in ("prompt", "response")} for i in train_ids])
    tasks = [dropped.stream_task or dropped.eval_task]
    loaded = run.models.load(run.final_weights)
    train_probe(loaded, examples, run.train_config, settings)
    probed = run.bridge.evaluate(loaded, f"probe {dropped.eval_task}", tasks=tasks).items
    # the control: the same probe on the base model, which forgot nothing (what the probe teaches by itself)
    base = run.models.load_base()
    base.model.requires_grad_(True)
    train_probe(base, examples, run.train_config, settings)
    control = run.bridge.evaluate(base, f"probe {dropped.eval_task} on the base", tasks=tasks).items
    last = int(run.rows["step"].max())

    def outcomes(frame: pd.DataFrame) -> np.ndarray:
        by_doc = frame[frame["eval_task"] == dropped.eval_task].set_index("doc_id")["correct"]
        return by_doc.reindex(scored).to_numpy(dtype=float)

    reference = outcomes(items[items["step"] == dropped.reference_step])
    final, probe = outcomes(items[items["step"] == last]), outcomes(probed)
    share, low, high = recovered_share(reference, final, probe, settings.bootstrap, settings.seed)
    return {
        "eval_task": dropped.eval_task,
        "kind": "stream" if dropped.stream_task else "general",
        "reference step": dropped.reference_step,
        "items scored": len(scored),
        "trained on": len(examples),
        "reference": float(reference.mean()),
        "final": float(final.mean()),
        "after probe": float(probe.mean()),
        "base after probe": float(outcomes(control).mean()),
        "recovered share": share,
        "share low": low,
        "share high": high,
        "reads as": verdict(share, settings.spurious_share),
    }


def train_probe(loaded: LoadedModel, examples: Dataset, train_config: TrainConfig, settings: AnalysisSettings) -> None:
    """The probe's training, in place: ``settings.probe_steps`` optimizer steps on ``examples`` (every
    weight; at ``settings.probe_lr``, else the run's lr), otherwise as the run trained."""
    config = replace(
        train_config,
        steps=settings.probe_steps,
        epochs=None,
        lr=settings.probe_lr or train_config.lr,
        batch_size=min(settings.probe_batch_size, len(examples)),
        grad_accum=1,
        effective_batch_size=None,
        log_every=settings.probe_steps,
        checkpoint_every_minutes=None,
    )
    train_on_task(loaded.model, loaded.tokenizer, examples, config, settings.seed, label="recovery probe")


def where(run: AnalysedRun) -> pd.DataFrame:
    """The restore table (:mod:`.where`) of the base (step 0) and the final weights."""
    base, tuned = run.models.weights(run.step_weights[0]), run.models.weights(run.final_weights)
    holder = run.models.load(run.step_weights[0])

    def score(weights: Weights) -> float:
        holder.model.load_state_dict(weights)
        return run.general_score(holder, "where")

    return restore_table(base, tuned, score)


def drift(run: AnalysedRun, settings: AnalysisSettings) -> pd.DataFrame:
    """Linear CKA (:mod:`.cka`) of each layer's states, at each step against step 0, on the first
    ``drift_items`` items of every general task."""
    prompts = [d["prompt"] for task in run.general_tasks for d in run.bridge.documents(task)[: settings.drift_items]]
    states = {}
    for step, path in enumerate(run.step_weights):
        loaded = run.models.load(path)
        states[step] = layer_states(loaded.model, loaded.tokenizer, prompts)
        log.info(f"drift: hidden states of step {step}/{len(run.step_weights) - 1} on {len(prompts)} items")
    return drift_table(states[0], {step: s for step, s in states.items() if step > 0})
