"""Reading YAML with limits: the one reader behind every YAML file and ``-o`` value bench takes.

PyYAML's ``safe_load`` refuses arbitrary objects but not documents built to exhaust a machine: a
"billion laughs" file (nested anchors and aliases) is a few hundred bytes that expand to billions
of values, a 5,000-digit integer fails deep in ``int()``, and a repeated key silently keeps the
last value. Here, before anything is built:

- the file is at most :data:`MAX_YAML_BYTES` and UTF-8 text;
- nesting is at most :data:`MAX_DEPTH` levels;
- the document, with every alias expanded, has at most :data:`MAX_NODES` values (aliases that stay
  under the limit keep working), and an alias may not refer to a mapping or list that contains it;
- integers fit in 64 bits (``-2**63 .. 2**63-1``);
- a key that appears twice in one mapping is an error naming both lines (``<<`` merge keys and the
  keys they bring in are allowed, as YAML defines them).

Each refusal is a :class:`bench.errors.ConfigError` of one sentence naming the file and line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bench.errors import ConfigError

#: Largest YAML file read (protocols and run configs are a few kilobytes).
MAX_YAML_BYTES = 1 << 20
#: Most values a document may hold once every alias is expanded.
MAX_NODES = 500_000
#: Deepest nesting of mappings and lists.
MAX_DEPTH = 64
#: Integers must fit in a signed 64-bit word.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
_MERGE = "tag:yaml.org,2002:merge"


class _Refusal(Exception):
    """A limit was hit at ``line`` (1-based); turned into one ConfigError naming the file."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line, self.message = line, message


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, composing under the module's limits."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.spent = 0
        self.depth = 0
        self.open_anchors: set[str] = set()
        self.sizes: dict[int, int] = {}

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self.open_anchors:
                raise _Refusal(line, f"alias *{event.anchor} refers to a mapping or list that contains it (a "
                                     "document that never ends); write the values out")
            node = super().compose_node(parent, index)
            self._spend(self._size(node), line)
            return node
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Refusal(line, f"nesting is deeper than {MAX_DEPTH} levels; flatten the document")
        self._spend(1, line)
        anchor = event.anchor
        if anchor is not None:
            self.open_anchors.add(anchor)
        node = super().compose_node(parent, index)
        self.open_anchors.discard(anchor)
        self.depth -= 1
        if isinstance(node, MappingNode):
            _check_keys(node)
        return node

    def _spend(self, n: int, line: int) -> None:
        self.spent += n
        if self.spent > MAX_NODES:
            raise _Refusal(line, f"the document expands to more than {MAX_NODES:,} values (aliases of aliases, "
                                 "a 'billion laughs' document?); write the values out or use fewer aliases")

    def _size(self, node: Node) -> int:
        """Values in ``node`` with every alias inside it expanded (memoised, so linear in the document)."""
        known = self.sizes.get(id(node))
        if known is not None:
            return known
        if isinstance(node, SequenceNode):
            size = 1 + sum(self._size(child) for child in node.value)
        elif isinstance(node, MappingNode):
            size = 1 + sum(self._size(k) + self._size(v) for k, v in node.value)
        else:
            size = 1
        self.sizes[id(node)] = size
        return size

    def construct_yaml_int(self, node: ScalarNode) -> int:
        line = node.start_mark.line + 1
        digits = node.value.replace("_", "").lstrip("+-")
        if len(digits) > 24:  # checked before int(): Python refuses > 4,300 digits with a traceback
            raise _Refusal(line, f"integer {node.value[:20]}... has {len(digits)} digits; integers must fit in "
                                 "64 bits")
        value = super().construct_yaml_int(node)
        if not INT_MIN <= value <= INT_MAX:
            raise _Refusal(line, f"integer {value} does not fit in 64 bits ({INT_MIN} .. {INT_MAX})")
        return value


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


def _check_keys(node: MappingNode) -> None:
    """A key written twice in one mapping is refused, naming both lines."""
    seen: dict[tuple[str, str], int] = {}
    for key, _ in node.value:
        if not isinstance(key, ScalarNode) or key.tag == _MERGE:
            continue
        line, name = key.start_mark.line + 1, (key.tag, key.value)
        if name in seen:
            where = f"lines {seen[name]} and {line}" if seen[name] != line else f"twice on line {line}"
            raise _Refusal(line, f"key {key.value!r} appears twice in one mapping ({where}); keep one, since the "
                                 "second would silently replace the first")
        seen[name] = line


@dataclass
class YamlDocument:
    """A parsed document and the 1-based line of every key path in it (for errors at a key's line)."""

    data: Any
    lines: dict[tuple, int] = field(default_factory=dict)

    def line_of(self, path: tuple) -> int | None:
        """The line of the deepest prefix of ``path`` that the document has, or None."""
        return next((self.lines[path[:i]] for i in range(len(path), -1, -1) if path[:i] in self.lines), None)


def yaml_document(text: str, where: str) -> YamlDocument:
    """Parse ``text`` under the limits; ``where`` names it in errors. Returns the data and its key lines."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_YAML_BYTES:
        raise ConfigError(f"{where} is larger than {MAX_YAML_BYTES:,} bytes, the limit for a YAML file; "
                          "a protocol or config is a few kilobytes, so check that this is the right file.")
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except _Refusal as refusal:
        raise ConfigError(f"{where} line {refusal.line}: {refusal.message}.") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{where}{line}: not valid YAML ({problem}); fix the syntax.") from None
    except RecursionError:
        raise ConfigError(f"{where}: the document is nested too deeply to read; flatten it.") from None
    finally:
        loader.dispose()
    return YamlDocument(data, _line_index(root))


def load_yaml(text: str, where: str) -> Any:
    """The data of YAML ``text`` read under the limits (see the module docstring)."""
    return yaml_document(text, where).data


def read_text(path: str | Path, what: str = "YAML file", max_bytes: int = MAX_YAML_BYTES) -> str:
    """The UTF-8 text of a small file, or a ConfigError naming it (missing, unreadable, too large, binary)."""
    path = Path(path)
    try:
        if path.exists() and not path.is_file() and not path.is_dir():
            raise ConfigError(f"{what} {path} is not a regular file (a pipe or device would block or never end); "
                              "pass the file itself.")
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > max_bytes:
                raise ConfigError(f"{what} {path} is {size:,} bytes, above the limit of {max_bytes:,}; check that "
                                  "this is the right file.")
            raw = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist; check the path.") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a directory; pass the file.") from None
    except OSError as err:
        raise ConfigError(f"{what} {path} cannot be read ({err.strerror or err}); check its permissions.") from None
    if len(raw) > max_bytes:
        raise ConfigError(f"{what} {path} is larger than {max_bytes:,} bytes; check that this is the right file.")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{what} {path} is not UTF-8 text (byte {err.start}); save it as UTF-8.") from None


def read_yaml(path: str | Path, what: str = "YAML file") -> Any:
    """Read a YAML file under the limits; every problem is one sentence naming the file (and line)."""
    return load_yaml(read_text(path, what), str(path))


def _line_index(root: Node | None) -> dict[tuple, int]:
    """Map each key path of a composed document to its 1-based line (aliased nodes at their first path)."""
    lines: dict[tuple, int] = {}
    visited: set[int] = set()

    def walk(node: Node, path: tuple) -> None:
        lines.setdefault(path, node.start_mark.line + 1)
        if id(node) in visited:
            return
        visited.add(id(node))
        if isinstance(node, MappingNode):
            for key, value in node.value:
                if isinstance(key, ScalarNode):
                    lines.setdefault(path + (key.value,), key.start_mark.line + 1)
                    walk(value, path + (key.value,))
        elif isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, path + (i,))

    if root is not None:
        walk(root, ())
    return lines
