"""The built-in data-source types: ``folder``, ``manifest``, ``hf`` and ``synthetic`` (the embedded benchmark).

Each is registered in the ``bench.sources`` entry-point group like a plugin's; the contract they
implement is :class:`bench.data.base.Source`.
"""
