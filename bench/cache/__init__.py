"""The on-disk feature cache: frozen-backbone features shared across runs, seeds and processes.
"""
