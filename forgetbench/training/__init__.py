"""Training: the inner loop that fine-tunes a model on one task (:mod:`.loop`), and what it is made
of: whole examples packed into rows (:mod:`.packing`, ``train.packing``), the output layer and
cross-entropy in recomputed chunks (:mod:`.chunked_loss`, ``train.fused_loss``), and bf16
stochastic-rounding AdamW (:mod:`.optim`).

The loop's public names are importable from here (``forgetbench.training.TrainConfig`` is the
``train`` config group's ``_target_``).
"""

from forgetbench.training.loop import (
    StepStats,
    TaskProgress,
    TaskResult,
    TrainConfig,
    autocast,
    build_optimizer,
    compiled,
    lm_loss,
    make_loader,
    step_batches,
    tokenize_pairs,
    train_on_task,
)

__all__ = [
    "StepStats",
    "TaskProgress",
    "TaskResult",
    "TrainConfig",
    "autocast",
    "build_optimizer",
    "compiled",
    "lm_loss",
    "make_loader",
    "step_batches",
    "tokenize_pairs",
    "train_on_task",
]
