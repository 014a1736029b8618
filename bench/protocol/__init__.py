"""Protocols: the schema of a protocol YAML and how protocol files are found and read.

``bench.protocol`` keeps the names a user script or plugin imports (``load_protocol``, ``Protocol``, ...);
:mod:`bench.protocol.schema` holds the models, :mod:`bench.protocol.files` the loading.
"""

from bench.protocol.files import catalog, load_protocol, located_error, parse_protocol, protocol_files
from bench.protocol.schema import (
    Budget,
    PairedTest,
    PairedVal,
    Perturb,
    Protocol,
    Split,
    ValSplit,
    check_select,
)

__all__ = ["Budget", "PairedTest", "PairedVal", "Perturb", "Protocol", "Split", "ValSplit", "catalog", "check_select",
           "load_protocol", "located_error", "parse_protocol", "protocol_files"]
