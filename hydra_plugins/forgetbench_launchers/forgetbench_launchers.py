"""Hydra launchers for sweeps: hydra-submitit-launcher's, with what forgetbench's jobs need.

``hydra/launcher=local`` (conf/hydra/launcher/local.yaml) runs a multirun's jobs at once on this
machine, each in its own process, through submitit's local executor; ``hydra/launcher=slurm``
submits them to a Slurm cluster. Both are submitit's launchers; what is added here:

- each job registers forgetbench's config resolvers (the job's process unpickles the task
  function by value and never imports ``forgetbench.experiment``);
- a local job gets its share of the machine: its CPU affinity is set to its block of the cores
  (so ``threads=auto`` divides them among the parallel jobs instead of oversubscribing them all),
  and, where several GPUs are visible, one GPU (round-robin);
- submitit's warning before a time limit or a preemption (SIGUSR2) stops the run as forgetbench's
  other stop signals do (the optimizer step in progress ends, a mid-task checkpoint is written), and
  only then does submitit requeue the job, which resumes inside the task. Left to submitit alone,
  the job would be requeued at once, from wherever training was;
- a Slurm job with several tasks (``tasks_per_node`` > 1: one process per GPU) is one multi-process
  run: each task exports torch.distributed's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
  MASTER_PORT) from Slurm's, as torchrun would, and ``forgetbench.distributed`` takes it from there.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Sequence

from hydra.core.utils import JobReturn
from hydra_plugins.hydra_submitit_launcher import submitit_launcher

from forgetbench.hardware import share_of_cores
from forgetbench.resolvers import register_resolvers

register_resolvers()


class LocalLauncher(submitit_launcher.LocalLauncher):
    """submitit's local executor, with the cores (and GPUs) shared out among the jobs."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        # recorded here, in the sweeping process, and read in each job's process (the launcher is pickled)
        self.cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self.first_job, self.jobs = initial_job_idx, len(job_overrides)
        if self.params.get("gpus_per_node") is None:  # submitit would hide every GPU from the jobs
            import torch

            self.params["gpus_per_node"] = torch.cuda.device_count()
        return super().launch(job_overrides, initial_job_idx)

    def __call__(self, sweep_overrides, job_dir_key, job_num, job_id, singleton_state) -> JobReturn:
        slot = job_num - self.first_job
        if self.cores:
            os.sched_setaffinity(0, share_of_cores(self.cores, slot, self.jobs))
        gpus = [gpu for gpu in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if gpu]
        if gpus:  # before torch first touches CUDA in this process
            os.environ["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
        job = super().__call__
        return _requeue_after_stop(lambda: job(sweep_overrides, job_dir_key, job_num, job_id, singleton_state))


class SlurmLauncher(submitit_launcher.SlurmLauncher):
    """submitit's Slurm launcher (Slurm gives each job its own cores and GPUs); imported by the job,
    so forgetbench's resolvers are registered there."""

    def __call__(self, sweep_overrides, job_dir_key, job_num, job_id, singleton_state) -> JobReturn:
        export_torch_distributed_environment()
        job = super().__call__
        return _requeue_after_stop(lambda: job(sweep_overrides, job_dir_key, job_num, job_id, singleton_state))


def export_torch_distributed_environment() -> None:
    """In a Slurm job of several tasks, set torch.distributed's variables from Slurm's (as torchrun
    would); every task sees all of the node's GPUs and takes cuda:LOCAL_RANK (forgetbench.distributed)."""
    import submitit

    if submitit.JobEnvironment().num_tasks > 1:
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def _requeue_after_stop(job: Callable[[], JobReturn]) -> JobReturn:
    """Run the job; if SIGUSR2 stopped it, hand over to submitit's own handler for that signal (saved
    here, before forgetbench's stop handlers replace it), which resubmits this launcher's call and
    requeues the job (Slurm: ``scontrol requeue``; local: the controller restarts it)."""
    from forgetbench.stopping import requested_stop

    submitits_handler = signal.getsignal(signal.SIGUSR2)
    try:
        return job()
    except SystemExit:  # forgetbench's stop: the step ended, a mid-task checkpoint is written
        if requested_stop() == signal.SIGUSR2 and callable(submitits_handler):
            submitits_handler(signal.SIGUSR2, None)  # checkpoints, requeues and exits (rank 0 only)
        raise
