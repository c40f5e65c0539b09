"""The forgetbench recipe: evaluate, then for each task train and evaluate again.

Reads top to bottom: ``setup`` builds every component from its config group
(and validates it, before anything is written), ``run`` is the loop, and each
finished step is recorded (rows, then checkpoint) so a rerun after a crash
continues from the last completed step without losing or repeating a row.
The report is the entry point's job, after the run: a training job imports no
plotting library.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from forgetbench.assembly import build, config_hash, load_stream
from forgetbench.checkpoint import (
    Checkpoint,
    keep_step_weights,
    load_checkpoint,
    remove_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from forgetbench.distributed import Processes
from forgetbench.errors import ForgetbenchError, RunDirectoryTaken, RunStopped
from forgetbench.evaluation.lm_eval_bridge import LmEvalBridge
from forgetbench.evaluation.lm_eval_output import Evaluation
from forgetbench.hardware import available_cores, cpu_threads, resolve_device
from forgetbench.loggers import Tracker, Trackers
from forgetbench.memory import describe_peak, reset_peak
from forgetbench.methods.base import TaskContext, training_state_kept
from forgetbench.metrics import forgetting_table, primary_scores
from forgetbench.results import GENERAL, STREAM, InsideTaskTable, ResultRow, RunFacts, RunTable
from forgetbench.run_lock import run_lock
from forgetbench.run_log import accept_run_log
from forgetbench.stopping import requested_stop
from forgetbench.streams.base import BringsGeneralText
from forgetbench.training import StepStats, TaskProgress, build_optimizer, train_on_task
from forgetbench.validation import Seed, check_value

log = logging.getLogger(__name__)

STATUS_FILE = "status.json"
# keep_checkpoint: false (the last checkpoint is removed when the run finishes), true (it is kept: the
# fine-tuned model), or "all" (also every step's weights, for `forgetbench analyze`'s drift and where)
KeepCheckpoint = bool | Literal["all"]


def seed_everything(seed: int) -> None:
    """What ``transformers.set_seed`` does for Python, NumPy and torch (CUDA included), without its
    import: that pulls in the Trainer's utilities and peft, 3 of the default run's 27 seconds."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds every CUDA device too


class Recipe:
    """One run: a model fine-tuned through a stream, evaluated before and after every step.

    Launched on several processes (``forgetbench.distributed``), every rank runs this recipe in
    lockstep; rank 0 alone writes (``self.processes.is_main``)."""

    def __init__(
        self, cfg: DictConfig, run_dir: Path, processes: Processes | None = None, trackers: Tracker | None = None
    ) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.processes = processes or Processes()
        self.trackers = trackers or Tracker()  # experiment trackers (logger=...), fed by rank 0
        check_value("seed", cfg.seed, Seed)  # the config groups check their own fields when built
        check_value("keep_checkpoint", cfg.keep_checkpoint, KeepCheckpoint)
        cpu_threads(cfg.threads)  # unhashed settings are checked here too: a finished run's rerun reads no other
        resolve_device(cfg.device)
        self.table = RunTable(run_dir)
        self.inside_table = InsideTaskTable(run_dir)  # evaluations inside a task (eval.every_steps)
        self.hash = config_hash(cfg)
        self._check_status()

    # ---- setup: build and validate everything before any result is written ----

    def setup(self) -> None:
        threads = cpu_threads(self.cfg.threads)
        torch.set_num_threads(threads)
        log.info(f"torch uses {threads} CPU threads ({available_cores()} cores available to this process)")
        model_source = build(self.cfg.model, "model")
        tokenizer = model_source.load_tokenizer()  # data is read and checked before any weight is loaded
        stream_source = build(self.cfg.stream, "stream")
        self.stream = load_stream(self.cfg, tokenizer, stream_source)
        # a stream may bring general text in its base model's style (the tiny world's); replay mixes it in
        brings_general = isinstance(stream_source, BringsGeneralText)
        self.general_examples = stream_source.general_examples() if brings_general else None
        self.method = build(self.cfg.method, "method")
        self.train_config = build(self.cfg.train, "train")
        self.suite = build(self.cfg.eval, "eval")
        self.processes.config = build(self.cfg.distributed, "distributed")
        self.bridge = LmEvalBridge(self.suite, self.stream, tokenizer)
        self.bridge.check_data()
        self.device = self.processes.start(resolve_device(self.cfg.device))
        self.loaded = model_source.load(self.device)
        if self.loaded.chat_template and not self.loaded.model.config.is_encoder_decoder:
            log.info(
                "chat template in force: training labels the assistant turns; evaluation %s it",
                "applies" if self.bridge.chat["apply_chat_template"] else "does not apply",
            )
        # a method's new weights (LoRA's A matrices) are drawn from the run's seed, not from whatever state
        # the process's RNG was left in (a multirun's jobs share one process: each job's adapters
        # depended on the jobs before it)
        seed_everything(self.cfg.seed)
        self.loaded.model = self.method.prepare_model(self.loaded.model, [t.name for t in self.stream])
        self.facts = RunFacts(
            run_id=self.run_dir.name,
            experiment=self.cfg.experiment_name,
            model=self.loaded.name,
            n_params=self.loaded.n_params,
            architecture=self.loaded.architecture,
            method=self.cfg.method.name,
            seed=self.cfg.seed,
            config_hash=self.hash,
        )
        seed_everything(self.cfg.seed)  # after loading: pretraining a cached base model must not shift the RNG
        self.optimizer = None
        self.task_progress: TaskProgress | None = None
        checkpoint = self._resume_weights()  # every rank reads the whole weights, then they are wrapped
        self.module = self.processes.wrap(self.loaded.model, self.cfg.method.name, self.method.fsdp_ready)
        self.done = self._resume_training(checkpoint)

    def _check_status(self) -> None:
        """Refuse a directory that holds another config's run; the hash comes from the status file,
        or from the rows when there is none (a status file removed because it was damaged)."""
        status = self._read_status()
        hashes = set(self.table.read()["config_hash"]) if status is None else {status["config_hash"]}
        if hashes - {self.hash}:
            raise RunDirectoryTaken(
                f"{self.run_dir} holds a run of a different config (hash {', '.join(sorted(hashes))}, "
                f"now {self.hash}); set run_name=... for a new run or remove that directory"
            )
        self.finished = bool(status and status["finished"])

    def _read_status(self) -> dict | None:
        path = self.run_dir / STATUS_FILE
        if not path.exists():
            return None
        try:
            status = json.loads(path.read_text())
            return {key: status[key] for key in ("config_hash", "steps", "finished")}
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ForgetbenchError(
                f"{path} is unreadable ({type(err).__name__}: {err}); remove it and rerun the same command "
                "to resume (the config is then checked against the run's rows)"
            ) from err

    def _write_status(self, finished: bool) -> None:
        tmp = self.run_dir / f".{STATUS_FILE}.tmp"
        tmp.write_text(json.dumps({"config_hash": self.hash, "steps": self.steps, "finished": finished}))
        os.replace(tmp, self.run_dir / STATUS_FILE)

    def _resume_weights(self) -> Checkpoint | None:
        """Restore the last checkpoint's weights, method state and RNG states (None: no checkpoint);
        rows written after it are dropped, to be recomputed (see _record). A run that scores another
        run's checkpoint (``eval_from``, set by ``forgetbench eval RUN_DIR``) starts from its weights."""
        checkpoint = load_checkpoint(self.run_dir, self.loaded.model, self.hash)
        if self.processes.is_main:
            self.table.truncate_after(-1 if checkpoint is None else checkpoint.step)
            inner = checkpoint.task["step"] if checkpoint is not None and checkpoint.task else 0
            self.inside_table.truncate_after(-1 if checkpoint is None else checkpoint.step, inner)
        if checkpoint is not None:
            self.method.load_state_dict(checkpoint.method)
        elif self.cfg.get("eval_from"):
            self._load_scored_checkpoint(Path(self.cfg.eval_from))
        return checkpoint

    def _load_scored_checkpoint(self, source: Path) -> None:
        """The weights and method state of ``source``'s checkpoint (the model that run fine-tuned)."""
        scored = load_checkpoint(source, self.loaded.model)
        if scored is None:
            raise ForgetbenchError(f"eval_from={str(source)!r} has no checkpoint (keep_checkpoint=true keeps one)")
        self.method.load_state_dict(scored.method)
        where = f"inside step {scored.step + 1}" if scored.task else f"after step {scored.step}"
        log.info(f"scoring the checkpoint of {source} ({where} of its stream)")

    def _resume_training(self, checkpoint: Checkpoint | None) -> int:
        """Restore the optimizer (and the progress inside a task); return the last completed step (-1: none)."""
        if checkpoint is None:
            return -1
        done = checkpoint.step
        if checkpoint.optimizer is not None:
            self.optimizer = build_optimizer(self.loaded.model, self.train_config)
            self.processes.load_optimizer_state(self.loaded.model, self.optimizer, checkpoint.optimizer)
        log.info(f"resuming {self.run_dir.name} after step {done}/{len(self.stream)}")
        if checkpoint.task is not None:
            self.task_progress = TaskProgress(**checkpoint.task)
            log.info(f"step {done + 1}/{len(self.stream)} continues at optimizer step {self.task_progress.step}")
        return done

    # ---- the loop ----

    @property
    def steps(self) -> int:
        """The stream steps this run trains: none under ``forgetbench eval`` (``eval_only``: step 0 alone)."""
        return 0 if self.cfg.get("eval_only", False) else len(self.stream)

    def run(self) -> None:
        n = len(self.stream)
        if self.processes.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._write_status(finished=False)
        self._last_checkpoint = time.monotonic()
        if self.done < 0:
            self._record(0, "", time.perf_counter())
        elif self.cfg.keep_checkpoint == "all" and self.task_progress is None and self.processes.is_main:
            keep_step_weights(self.run_dir, self.done)  # a crash between the checkpoint and its copy
        for step, task in enumerate(self.stream[: self.steps], start=1):
            if step <= self.done:
                continue
            start = time.perf_counter()
            log.info(f"step {step}/{n}: fine-tuning on {task.name}")
            ctx = TaskContext(
                self.loaded.model,
                self.loaded.tokenizer,
                task.name,
                step,
                task.train,
                self.train_config,
                seed=self.cfg.seed * 1000 + step,
                general_examples=self.general_examples,
            )
            reset_peak(self.device)
            self.method.before_task(ctx)
            examples = self.method.training_examples(ctx)
            self._inside_seconds = 0.0
            trained, self.optimizer = train_on_task(
                self.loaded.model,
                self.loaded.tokenizer,
                examples,
                self.train_config,
                seed=ctx.seed,
                optimizer=self.optimizer,
                label=f"step {step}/{n} {task.name}",
                extra_loss=self.method.extra_loss,
                batch_loss=self.method.batch_loss,
                before_update=self.method.before_update,
                after_update=self.method.after_update,
                resume=self.task_progress if step == self.done + 1 else None,
                after_step=functools.partial(self._after_optimizer_step, step, task.name),
                processes=self.processes,
                module=self.module,
            )
            self.method.after_task(ctx)
            # what the method costs, beside the scores (experiments/method_costs.py reads these lines)
            log.info(
                f"step {step}/{n}: {trained.steps} optimizer steps in {trained.seconds:.1f}s "
                f"({trained.seconds / max(trained.steps, 1):.3f} s/step), {describe_peak(self.device)}"
            )
            if self._inside_seconds:  # what evaluating inside the task cost, beside the training
                log.info(
                    f"step {step}/{n}: evaluations inside the task took {self._inside_seconds:.1f}s, "
                    f"training {trained.seconds - self._inside_seconds:.1f}s"
                )
            self._record(step, task.name, start)
            _log_eta(step, n, time.perf_counter() - start)
        if self.processes.is_main:
            self._write_status(finished=True)
            if not self.cfg.keep_checkpoint:
                remove_checkpoint(self.run_dir)
            self.log_summary()

    def _after_optimizer_step(
        self, step: int, task: str, progress: Callable[[], TaskProgress], stopping: bool, stats: StepStats
    ) -> None:
        """After each optimizer step of ``step``: the trackers get its loss; an evaluation when
        ``eval.every_steps`` or ``eval.at_steps`` asks for one here; a checkpoint inside the task when a
        stop signal arrived (the loop then stops) or ``train.checkpoint_every_minutes`` have passed.
        (The evaluation comes first: a checkpoint is only ever written after the rows before it.)"""
        if self.processes.is_main:
            self.trackers.log_training(step, task, stats)
        if self.suite.evaluates_inside(stats.step, stats.total):
            self._record_inside(step, task, stats)
        every = self.train_config.checkpoint_every_minutes
        due = every is not None and time.monotonic() - self._last_checkpoint >= 60 * every
        if not (stopping or self.processes.any(due)):  # rank 0's clock decides for all: they agree
            return
        snapshot = progress()
        self._save_checkpoint(step - 1, None, asdict(snapshot))
        self._last_checkpoint = time.monotonic()
        log.info(f"mid-task checkpoint: step {step}/{len(self.stream)} at optimizer step {snapshot.step}")

    def _record_inside(self, step: int, task: str, stats: StepStats) -> None:
        """Evaluate inside step ``step``'s task after ``stats.step`` optimizer steps, and append the rows
        to the inside-task table. The RNG states are put back afterwards, so that training continues
        exactly as it would have without the evaluation (and as a resume from a checkpoint does)."""
        label = f"step {step}/{len(self.stream)} {task} inside {stats.step}/{stats.total}"
        rng, start = rng_state(), time.perf_counter()
        with training_state_kept(self.loaded.model):
            evaluation = self.bridge.evaluate(
                self.loaded, label, self.method.evaluating, self.method.router(), inside_task=True
            )
        set_rng_state(rng)
        seconds = time.perf_counter() - start
        self._inside_seconds += seconds
        if self.processes.is_main:
            self.inside_table.append(self._rows(evaluation, step, task, seconds), stats.step, stats.total)

    def _record(self, step: int, trained_task: str, start: float) -> None:
        """Evaluate, append the step's rows, then checkpoint (in that order: see _resume_weights)."""
        label = f"step {step}/{len(self.stream)}"
        evaluation = self.bridge.evaluate(self.loaded, label, self.method.evaluating, self.method.router())
        stop = self.processes.agreed_stop(requested_stop())
        if stop is not None:  # a stop during evaluation records nothing of this step
            raise RunStopped(stop)
        if self.processes.is_main:
            rows = self._rows(evaluation, step, trained_task, time.perf_counter() - start)
            self.table.append_step(rows, evaluation.items, step)
            self.trackers.log_rows(rows)
        self._save_checkpoint(step, None if self.train_config.reset_optimizer else self.optimizer)
        if self.cfg.keep_checkpoint == "all" and self.processes.is_main:
            keep_step_weights(self.run_dir, step)

    def _save_checkpoint(self, step: int, optimizer: torch.optim.Optimizer | None, task: dict | None = None) -> None:
        """Gather the whole states (a collective under FSDP: every rank calls this); rank 0 writes them."""
        model = self.loaded.model
        weights = self.processes.model_state(model)
        optimizer_state = None if optimizer is None else self.processes.optimizer_state(model, optimizer)
        if self.processes.is_main:
            save_checkpoint(self.run_dir, step, weights, optimizer_state, self.method.state_dict(), task, self.hash)

    def _rows(self, evaluation: Evaluation, step: int, trained_task: str, seconds: float) -> list[ResultRow]:
        return [
            ResultRow.of(
                self.facts,
                step=step,
                trained_task=trained_task,
                eval_kind=STREAM if s.stream_task else GENERAL,
                eval_task=s.eval_task,
                stream_task=s.stream_task,
                eval_category=STREAM if s.stream_task else self.suite.category_of(s.eval_task),
                metric=s.metric,
                value=s.value,
                stderr=s.stderr,
                n=s.n,
                wall_time=seconds,
                eval_seconds=s.seconds,
            )
            for s in evaluation.scores
        ]

    def close(self) -> None:
        """Let go of the DDP wrapper, then leave the process group. The wrapper's reducer holds the
        group; freed only after the group was destroyed (when the recipe went out of scope), gloo's
        destructor waited forever on its worker threads and the process never exited."""
        self.module = None
        gc.collect()  # the wrapper sits in reference cycles (hooks): free it now, not at some later collection
        self.processes.stop()

    def log_summary(self) -> None:
        """Log each general task's curve and its forgetting (start, final, drop, FG)."""
        rows = self.table.read()
        _log_summary(primary_scores(rows[rows["eval_kind"] == GENERAL]))


def _log_eta(step: int, total: int, seconds: float) -> None:
    remaining = (total - step) * seconds
    log.info(f"step {step}/{total} done in {seconds:.1f}s; run ETA {remaining:.0f}s")


def _log_summary(general: pd.DataFrame) -> None:
    """Print each general task's curve and its forgetting (start, final, drop, FG)."""
    for task, group in general.groupby("eval_task"):
        scores = group.set_index("step")["value"].sort_index()
        log.info(f"{task}: " + " → ".join(f"{s:.3f}" for s in scores))
    if general["step"].nunique() > 1:
        table = forgetting_table(general, metric=None)
        log.info(
            "forgetting (each task's headline metric; over_refusal's drop is its rise): "
            "task | metric | start | final | drop (points) | drop % | FG\n"
            + "\n".join(
                f"{task} | {r.metric} | {r.start:.3f} | {r.final:.3f} | {100 * r['drop']:.1f} | "
                f"{r.drop_pct:.1f} | {r.fg:.1f}"
                for task, r in table.iterrows()
            )
        )


def build_trackers(cfg: DictConfig) -> Trackers:
    """The configured experiment trackers (``logger``), built and checked: a missing package is one line."""
    return Trackers([build(node, f"logger.{name}") for name, node in (cfg.get("logger") or {}).items()])


def run_experiment(
    cfg: DictConfig, run_dir: Path, on_accept: Callable[[], None] | None = None, trackers: Tracker | None = None
) -> None:
    """Run (or resume) one experiment in ``run_dir``; a finished run is left as it is.

    Args:
        on_accept: called once the run is accepted: ``run_dir`` is this config's (new, or a run of
            the same config to resume), locked for this process (see ``forgetbench.run_lock``), and
            everything is built and checked, before the first result is written; the entry point
            records the config there, opens the run's log and starts the trackers. A refused run
            (another config's directory, one in use, bad input or a damaged file) is refused before it.
        trackers: the experiment trackers (:func:`build_trackers`), fed each training step and each
            step's rows by rank 0; started in ``on_accept`` and finished by the entry point.
    """
    processes = Processes()  # which rank this is (from the launcher's environment); its config comes in setup
    recipe = Recipe(cfg, run_dir, processes, trackers)
    # a second process on this directory stops here, having written nothing; the other ranks of this
    # run are not second writers (they write nothing)
    with run_lock(run_dir) if processes.is_main else contextlib.nullcontext() as held:
        if recipe.finished:  # accepted for its report: nothing else is written
            if processes.is_main:
                accept_run_log()
            log.info(f"{run_dir} is already finished; nothing to do")
            if not cfg.keep_checkpoint and processes.is_main:  # a kill between marking the run finished and removing it
                remove_checkpoint(run_dir)
            recipe.log_summary()
            return
        try:
            recipe.setup()  # every check passed: the run is accepted
            if processes.is_main:
                held.claim()
                if on_accept:
                    on_accept()
            recipe.run()
        finally:
            recipe.close()
