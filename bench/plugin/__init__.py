"""The plugin contract: what a detector adapter implements and how it is registered, built and checked.

Depends only on :mod:`bench.errors` and :mod:`bench.metrics`; every other stage depends on it.
"""
