"""Full fine-tuning: every weight trains on every task, nothing protects the past."""

from dataclasses import dataclass
from typing import ClassVar

from forgetbench.methods.base import Method


@dataclass
class Full(Method):
    name: str = "full"
    fsdp_ready: ClassVar[bool] = True
