"""Several processes (gloo, CPU) through torchrun on the tiny world: DDP and FSDP train as one process
with the same effective batch does, rank 0 alone writes, and a stop on one rank stops them all inside
the task, resumable to the same table."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from forgetbench.distributed import DistributedConfig, Processes
from forgetbench.errors import ForgetbenchError
from forgetbench.results import read_results
from tests.conftest import ROOT, SMALL, _command, run_cli, running_processes, wait_inside_task_2

# two micro-batches per optimizer step: one per process under torchrun, both in one process alone;
# 40 steps a task, so that a signal can land inside one
TWO_MICRO_BATCHES = [
    *SMALL,
    "train.grad_accum=2",
    "train.steps=40",
    "train.log_every=1",
    "keep_checkpoint=true",
    "threads=1",
]
RUN = ("results", "tiny_world", "tiny_decoder-full-seed0")


def torchrun(args: list[str], root: Path, cache: Path) -> list[str]:
    """``torchrun --standalone --nproc_per_node 2 -m forgetbench ARGS`` (a free port: tests may run side by side)."""
    command = _command(args, root, cache)
    assert command[1:3] == ["-m", "forgetbench"]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *command[1:]]


def run_torchrun(args: list[str], root: Path, cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run(torchrun(args, root, cache), cwd=ROOT, capture_output=True, text=True, timeout=600)


def _table(root: Path) -> pd.DataFrame:
    rows = read_results(root / "results").drop(columns=["wall_time", "eval_seconds"])
    return rows.sort_values(["step", "eval_task", "metric"]).reset_index(drop=True)


def _weights(root: Path) -> dict[str, torch.Tensor]:
    return load_file(root.joinpath(*RUN, "checkpoint", "model.safetensors"))


def assert_same_run(root: Path, reference: Path, weight_tolerance: float) -> None:
    """Same rows; each score within one item of the reference (1/n), the final weights within
    ``weight_tolerance`` (floating-point summation order differs between one and two processes)."""
    table, expected = _table(root), _table(reference)
    keys = ["step", "eval_task", "metric", "n"]
    pd.testing.assert_frame_equal(table[keys], expected[keys])
    assert ((table["value"] - expected["value"]).abs() <= 1 / expected["n"] + 1e-9).all()
    weights, reference_weights = _weights(root), _weights(reference)
    for name, tensor in reference_weights.items():  # FSDP also saves a tied output layer under its own name
        assert (weights[name] - tensor).abs().max() <= weight_tolerance, name


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, cache_dir) -> Path:
    root = tmp_path_factory.mktemp("one_process")
    done = run_cli(TWO_MICRO_BATCHES, root, cache_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    return root


def test_two_ddp_processes_train_as_one_process_does(one_process, tmp_path, cache_dir) -> None:
    """Each process runs one of the step's two micro-batches; gradients averaged over the two equal
    the one process's accumulated mean (measured identical here; tolerance 1e-5 for other CPUs)."""
    done = run_torchrun(TWO_MICRO_BATCHES, tmp_path, cache_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_run(tmp_path, one_process, weight_tolerance=1e-5)
    run_dir = tmp_path.joinpath(*RUN)
    log = (run_dir / "__main__.log").read_text()
    assert "rank 0/2 on cpu (ddp)" in log and "rank 1/2" not in log  # one writer: rank 0's log only
    assert len(re.findall(r"step 1/3: fine-tuning", log)) == 1


def test_packed_steps_split_over_two_ddp_processes_as_one_process_runs_them(tmp_path, cache_dir) -> None:
    """train.packing=true: each step's rows are dealt to a number of micro-batches divisible by the
    processes, and each micro-batch weighs by its share of the step's labelled tokens, so two DDP
    processes train as one process does (tolerance 1e-5, as for the padded loop)."""
    args = [*TWO_MICRO_BATCHES, "train.packing=true", "train.steps=6"]
    alone = tmp_path / "alone"
    done = run_cli(args, alone, cache_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    done = run_torchrun(args, tmp_path / "ddp", cache_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_run(tmp_path / "ddp", alone, weight_tolerance=1e-5)


def test_fsdp_shards_the_model_over_two_processes_and_trains_as_one_process_does(
    one_process, tmp_path, cache_dir
) -> None:
    """FSDP2 on CPU (gloo), float32 compute to compare: the checkpoint is gathered whole to rank 0
    (measured within 2.8e-6 of the one-process weights after 120 steps at lr 1e-3; tiny_encdec,
    more chaotic at that lr, within 3.2e-6 after 3 steps and 1.0e-2 after 120)."""
    args = [*TWO_MICRO_BATCHES, "distributed=fsdp", "distributed.param_dtype=float32"]
    done = run_torchrun(args, tmp_path, cache_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rank 0/2 on cpu (fsdp)" in tmp_path.joinpath(*RUN, "__main__.log").read_text()
    assert_same_run(tmp_path, one_process, weight_tolerance=1e-3)


def test_a_stop_on_one_rank_stops_every_rank_inside_the_task_and_resumes(one_process, tmp_path, cache_dir) -> None:
    """SIGUSR1 to rank 1 alone (a signal reaches the ranks at different moments): the ranks agree after
    the step in progress, rank 0 writes the mid-task checkpoint, every rank stops; the rerun continues
    inside the task and ends with the table and weights of an uninterrupted run."""
    args = TWO_MICRO_BATCHES
    root = tmp_path / "stopped"
    log = root.joinpath(*RUN, "__main__.log")
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w") as err:
        process = subprocess.Popen(torchrun(args, root, cache_dir), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
        wait_inside_task_2(process, lambda: [log])
        workers = [pid for pid, parent, _ in running_processes() if parent == process.pid]  # torchrun's
        [rank_1] = [pid for pid in workers if _rank(pid) == 1]
        os.kill(rank_1, signal.SIGUSR1)
        process.wait(timeout=120)
    text = log.read_text()
    saved = [int(n) for n in re.findall(r"mid-task checkpoint: step 2/3 at optimizer step (\d+)", text)]
    assert saved and 10 <= saved[-1] < 40, text[-3000:]
    assert "stopped by SIGUSR1 during step 2/3; steps 0-1 are kept" in stderr.read_text()  # said by rank 0

    resumed = run_torchrun(args, root, cache_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    [continued] = [int(n) for n in re.findall(r"step 2/3 continues at optimizer step (\d+)", log.read_text())]
    assert continued == saved[-1]
    assert_same_run(root, one_process, weight_tolerance=1e-5)


def _rank(pid: int) -> int | None:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    ranks = [int(entry.split(b"=", 1)[1]) for entry in environ if entry.startswith(b"RANK=")]
    return ranks[0] if ranks else None


def test_the_step_micro_batches_must_split_evenly_over_the_processes(monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "4")
    processes = Processes()
    assert processes.split_step(8) == 2
    with pytest.raises(ForgetbenchError, match=r"train.grad_accum=6 .* cannot be split evenly over 4 processes"):
        processes.split_step(6)


def test_methods_that_copy_the_weights_are_refused_under_fsdp(monkeypatch) -> None:
    """EWC's Fisher, L2-SP's anchor, WiSE's base weights are whole copies; FSDP keeps shards."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    processes = Processes(DistributedConfig(strategy="fsdp"))
    with pytest.raises(ForgetbenchError, match="method=ewc keeps whole copies of the weights, which FSDP shards"):
        processes.wrap(torch.nn.Linear(2, 2), "ewc", fsdp_ready=False)


def test_a_slurm_job_with_several_tasks_is_one_multi_process_run(monkeypatch) -> None:
    """hydra/launcher=slurm with tasks_per_node=2: each task exports torch.distributed's variables
    from Slurm's before the run starts (no Slurm here: its environment is set as sbatch would)."""
    from hydra_plugins.forgetbench_launchers.forgetbench_launchers import export_torch_distributed_environment

    slurm = {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "4242", "SLURM_NTASKS": "2", "SLURM_JOB_NUM_NODES": "1"}
    slurm |= {"SLURM_NODEID": "0", "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_PROCID": "1", "SLURM_LOCALID": "1"}
    for name, value in slurm.items():
        monkeypatch.setenv(name, value)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.setenv(name, "")  # recorded, so that what the export sets is undone after the test
        monkeypatch.delenv(name)
    export_torch_distributed_environment()
    exported = tuple(os.environ[name] for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR"))
    assert exported == ("1", "2", "1", "gpu07")
    assert Processes().rank == 1 and Processes().distributed


def test_an_fsdp_optimizer_state_is_not_loaded_into_one_process() -> None:
    """FSDP keys its whole optimizer state by parameter name, torch's optimizer by position."""
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    by_name = {"state": {"weight": {"step": torch.tensor(1.0)}}, "param_groups": [{"params": ["weight", "bias"]}]}
    with pytest.raises(ForgetbenchError, match="written under distributed=fsdp; resume the run the same way"):
        Processes().load_optimizer_state(model, optimizer, by_name)
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    Processes().load_optimizer_state(model, optimizer, optimizer.state_dict())  # its own layout loads
