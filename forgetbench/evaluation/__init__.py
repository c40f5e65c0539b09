"""Evaluation: suites of lm-eval tasks and the bridge that runs them on an in-memory model."""
