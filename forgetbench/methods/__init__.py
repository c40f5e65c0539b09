"""Forgetting-mitigation methods: one class per file, plugged into the loop's hooks."""
