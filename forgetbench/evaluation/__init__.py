"""Evaluation, the one door to lm-eval: suites of tasks, stream tasks' held-out rows turned into
lm-eval tasks (task_configs.py, tasks/), and the bridge that scores an in-memory model."""
