"""A stop signal is never lost, even when its exception is raised inside a finalizer and swallowed."""

from __future__ import annotations

import os
import signal
import sys

import pytest
from datasets import Dataset

from forgetbench import stopping
from forgetbench.errors import RunStopped
from forgetbench.training import TrainConfig, train_on_task
from tests.helpers import tiny_model

WORDS = "one two three four five six".split()


class _SignalsWhenCollected:
    """Sends SIGTERM from ``__del__``: Python runs the handler there and can only print its exception."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(1000))  # bytecode after the kill, where the pending handler runs


@pytest.fixture
def stop_handlers(monkeypatch):
    monkeypatch.setattr(stopping, "_requested", None)
    previous = {signum: signal.getsignal(signum) for signum in stopping.STOP_SIGNALS}
    stopping.install_stop_handlers()
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def test_training_stops_at_the_next_step_after_a_swallowed_stop(stop_handlers, monkeypatch) -> None:
    lost = []
    monkeypatch.setattr(sys, "unraisablehook", lost.append)
    _SignalsWhenCollected()  # collected at once: the handler's RunStopped is lost in __del__
    assert [type(u.exc_value) for u in lost] == [RunStopped]

    model, tokenizer = tiny_model("llama", WORDS)
    examples = Dataset.from_list([{"prompt": w, "response": w} for w in WORDS])
    with pytest.raises(RunStopped) as stopped:
        train_on_task(model, tokenizer, examples, TrainConfig(steps=50, batch_size=2), seed=0)
    assert stopped.value.signum == signal.SIGTERM


def test_a_forked_child_ends_quietly_on_sigterm(stop_handlers) -> None:
    """lm-eval's bootstrap pool forks workers and stops them with SIGTERM on teardown: they must end
    by the signal's default action, not by the run's handler (a RunStopped traceback per worker)."""
    import multiprocessing
    import time

    child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(30,))
    child.start()
    time.sleep(0.5)  # the child is inside sleep, where the old handler raised RunStopped
    child.terminate()
    child.join(timeout=10)
    assert child.exitcode == -signal.SIGTERM  # killed by the signal, not exit status 1 from a traceback
    assert signal.getsignal(signal.SIGTERM) is stopping._request_stop  # the run's process keeps its handler
