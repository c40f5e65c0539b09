"""Full fine-tuning: every weight trains on every task, nothing protects the past."""

from forgetbench.methods.base import Method


class Full(Method):
    name = "full"
