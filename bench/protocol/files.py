"""Protocol files: name → file resolution across protocol packs, parsing with errors at the key's line.

Protocol packs are packages registered in the ``bench.protocols`` entry-point group; each holds
``<name>.yaml`` files and optionally a ``sources.yaml`` of named source definitions.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from bench.errors import ConfigError, did_you_mean
from bench.inputs import YamlDocument, load_yaml, read_text, yaml_document
from bench.protocol.schema import Protocol, _Located


def parse_protocol(text: str, where: str) -> Protocol:
    """Parse and validate protocol YAML ``text``; ``where`` names the file in errors.

    The text is read by :func:`bench.inputs.yaml_document` (size, nesting, aliases and integers
    bounded; duplicate keys refused), then checked against the strict schema.
    """
    document = yaml_document(text, where)
    data = document.data
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a protocol must be a YAML mapping with keys name, version, train, ...")
    try:
        return Protocol.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        located = (first.get("ctx") or {}).get("error")
        loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and p[0].isupper()))
        loc = located.path if isinstance(located, _Located) else loc
        msg = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            msg = "unknown key; remove it or check its spelling against `bench validate --help`"
        raise _located(document, where, loc, msg) from None


def located_error(text: str, where: str, loc: tuple, msg: str) -> ConfigError:
    """``<file> line N, key 'a.b': <msg>.``, the line being that of the deepest key of ``loc`` found."""
    return _located(yaml_document(text, where), where, loc, msg)


def _located(document: YamlDocument, where: str, loc: tuple, msg: str) -> ConfigError:
    line = document.line_of(loc)
    key = ".".join(str(p) for p in loc) or "(top level)"
    msg = msg.rstrip(".")
    return ConfigError(f"{where}{f' line {line}' if line else ''}, key {key!r}: {msg}{'' if msg.endswith('?') else '.'}")


def protocol_files() -> dict[str, Path]:
    """Every protocol YAML shipped by registered protocol packs, by protocol name."""
    from bench.plugin.registry import PROTOCOLS

    files: dict[str, Path] = {}
    for pack in PROTOCOLS.names():
        package = PROTOCOLS.get(pack)
        for item in resources.files(package).iterdir():
            if item.name.endswith(".yaml") and item.name != "sources.yaml":
                files.setdefault(item.name.removesuffix(".yaml"), Path(str(item)))
    return files


def load_protocol(name_or_path: str | Path) -> Protocol:
    """Load a protocol by registered name or from a ``.yaml`` path."""
    path = Path(name_or_path)
    if str(name_or_path).endswith((".yaml", ".yml")):
        if not path.exists():
            raise ConfigError(f"Protocol file {path} does not exist; check the path.")
    else:
        files = protocol_files()
        if str(name_or_path) not in files:
            raise ConfigError(
                f"Unknown protocol {str(name_or_path)!r}.{did_you_mean(str(name_or_path), files)} "
                f"Available: {', '.join(sorted(files))} (or pass a path ending in .yaml)."
            )
        path = files[str(name_or_path)]
    proto = parse_protocol(read_text(path, "Protocol file"), str(path))
    if proto.name != path.stem:
        raise ConfigError(f"{path}: `name: {proto.name}` must equal the file name {path.stem!r}; rename one.")
    return proto


def catalog() -> dict[str, dict]:
    """Named source definitions from every protocol pack's ``sources.yaml``."""
    from bench.plugin.registry import PROTOCOLS

    found: dict[str, dict] = {}
    for pack in PROTOCOLS.names():
        item = resources.files(PROTOCOLS.get(pack)) / "sources.yaml"
        if item.is_file():
            found.update(load_yaml(item.read_text(encoding="utf-8"), f"{pack}/sources.yaml") or {})
    return found
