"""Shared harness code: experiment schema, data, method registry, training loop, runner, downloads."""
