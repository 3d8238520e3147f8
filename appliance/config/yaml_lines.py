"""YAML text to Python data plus the line of every key, so validation errors can point into the file.

pyyaml forgets where values came from once it constructs Python objects, and silently keeps the
last of two equal keys in a mapping. Here the document is composed into nodes first (which carry
their marks), walked once to record a line per key path and to find duplicate keys, and only then
constructed, with the same loader, into plain dicts, lists and scalars.

A key path is a tuple of mapping keys (as constructed: ``'storage'``, ``1``, ``True``) and list
indices (``int``), e.g. ``('channels', 1, 'source', 'url')``; it prints as ``channels[1].source.url``.
`locate` turns a pydantic error location into such a path, and finds the model field it names.

A config is hostile input (it also arrives over the web), so loading is bounded before anything is
built from it: the text's size, the nesting depth (pyyaml composes recursively), the number of values
once aliases are expanded (a 400-byte "billion laughs" document would otherwise expand to gigabytes in
the walk and in validation), the length of numbers (Python refuses ints over 4300 digits with a
traceback) and NUL characters (no path or name can hold one). A document over a limit raises
`YamlLimitError`, a `yaml.YAMLError` with the key path and line where the limit was crossed.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

KeyPath = tuple[object, ...]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_NUMBER_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})

MAX_YAML_CHARS = 1 << 20  # a full 256-channel config is under 100 KiB
MAX_DEPTH = 64  # nesting levels, aliases expanded; a config needs about 6
MAX_VALUES = 50_000  # keys, items and scalars, aliases expanded; 256 channels with every setting need ~16 000
MAX_NUMBER_CHARS = 64  # an int or float written with more characters is rejected, not converted


class YamlLimitError(yaml.YAMLError):
    """A document over one of the loading limits: `path` (key path, may be empty), 1-based `line`, `message`."""

    def __init__(self, path: KeyPath, line: int | None, message: str):
        super().__init__(message)
        self.path, self.line, self.message = path, line, message


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader with composition stopped at `MAX_DEPTH` levels (pyyaml recurses once per level)."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: object) -> Node:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise YamlLimitError((), mark.line + 1, f"nested more than {MAX_DEPTH} levels deep; a config needs "
                                                        f"a handful (check for unclosed [ or {{)")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


@dataclass(frozen=True)
class DuplicateKey:
    """A key that occurs twice in one mapping; pyyaml would keep only the later value."""

    path: KeyPath
    line: int
    first_line: int


@dataclass
class Document:
    """A parsed YAML document: its data, the 1-based line of each key path, and its duplicate keys.

    `data` is None for a stream with no document (an empty or comment-only file).
    """

    data: object
    lines: dict[KeyPath, int] = field(default_factory=dict)
    duplicates: list[DuplicateKey] = field(default_factory=list)

    def line_of(self, path: KeyPath) -> int | None:
        """The line of `path`, or of its nearest ancestor that is in the file (e.g. for a missing key)."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None


def load_document(text: str) -> Document:
    """Parse one YAML document with the safe loader; raises `yaml.YAMLError` on bad syntax and
    `YamlLimitError` on a document over the limits (size, depth, expanded values, long numbers, NUL)."""
    if len(text) > MAX_YAML_CHARS:
        raise YamlLimitError((), None, f"the document has {len(text)} characters; at most {MAX_YAML_CHARS} are read")
    loader = _BoundedLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return Document(data=None)
        _check_expansion(root)
        # Walk before constructing: construction flattens merge keys (<<) in place.
        document = Document(data=None, lines={(): _line(root)})
        _walk(loader, root, (), document, frozenset())
        document.data = loader.construct_document(root)
        return document
    finally:
        loader.dispose()


def format_path(path: KeyPath) -> str:
    """``('channels', 1, 'source', 'url')`` -> ``'channels[1].source.url'``; ``()`` -> ``''``."""
    text = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def error_line(exc: yaml.YAMLError, text: str) -> int | None:
    """The 1-based line a pyyaml error points at, or None if it carries no position."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return mark.line + 1
    position = getattr(exc, "position", None)  # ReaderError (a forbidden control character)
    if isinstance(position, int):
        return text.count("\n", 0, position) + 1
    return None


def error_message(exc: yaml.YAMLError) -> str:
    """A one-line description of a pyyaml error, without pyyaml's multi-line source excerpt."""
    problem = getattr(exc, "problem", None)
    if not problem:
        return str(exc).splitlines()[0]
    message = problem
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and context_mark is not None:
        message += f" ({context} that starts on line {context_mark.line + 1})"
    if "\\t" in problem or "\t" in problem:
        message += "; indent with spaces, YAML does not allow tabs"
    return message


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _check_expansion(root: Node) -> None:
    """Raise YamlLimitError if the node graph, aliases expanded, is deeper than MAX_DEPTH, holds more
    than MAX_VALUES values, or contains itself. Linear in the composed graph: each node is sized once
    (iteratively, so no recursion limit applies) however often aliases repeat it."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (values, depth), aliases expanded
    on_path: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children = _child_nodes(node)
        if not children_done:
            if key in on_path:
                raise YamlLimitError((), _line(node), "an alias (*name) refers to a value that contains it; "
                                                      "a config cannot be infinite")
            on_path.add(key)
            stack.append((node, True))
            for child in children:
                if id(child) in on_path:
                    raise YamlLimitError((), _line(child), "an alias (*name) refers to a value that contains it; "
                                                           "a config cannot be infinite")
                if id(child) not in sizes:
                    stack.append((child, False))
            continue
        on_path.discard(key)
        values = 1 + sum(sizes[id(child)][0] for child in children)
        depth = 1 + max((sizes[id(child)][1] for child in children), default=0)
        if values > MAX_VALUES:
            raise YamlLimitError((), _line(node), f"aliases (*name) expand this value to more than {MAX_VALUES} "
                                                  f"values; write the settings out or repeat fewer of them")
        if depth > MAX_DEPTH:
            raise YamlLimitError((), _line(node), f"aliases (*name) nest this value more than {MAX_DEPTH} levels deep")
        sizes[key] = (values, depth)


def _child_nodes(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_scalar(node: Node, path: KeyPath) -> None:
    """YamlLimitError for a scalar that holds a NUL character or is a number longer than MAX_NUMBER_CHARS."""
    if not isinstance(node, ScalarNode):
        return
    if "\0" in node.value:
        raise YamlLimitError(path, _line(node), f"contains a NUL character (\\0), which no path, name or "
                                                f"setting may hold: {node.value[:60]!r}")
    if node.tag in _NUMBER_TAGS and len(node.value) > MAX_NUMBER_CHARS:
        raise YamlLimitError(path, _line(node), f"a number written with {len(node.value)} characters; at most "
                                                f"{MAX_NUMBER_CHARS} are accepted")


def _walk(loader: yaml.SafeLoader, node: Node, path: KeyPath, document: Document,
          ancestors: frozenset[int]) -> None:
    """Record the line of every key below `node` and every duplicate key, depth first; check each scalar."""
    _check_scalar(node, path)
    if id(node) in ancestors:  # an alias that refers to its own ancestor: stop, don't loop
        return
    ancestors = ancestors | {id(node)}
    for child_path, line, child in _children(loader, node, path, document):
        document.lines[child_path] = line
        _walk(loader, child, child_path, document, ancestors)


def _children(loader: yaml.SafeLoader, node: Node, path: KeyPath,
              document: Document) -> Iterator[tuple[KeyPath, int, Node]]:
    """Yield (path, line, value node) for each item of a sequence or entry of a mapping."""
    if isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            yield path + (index,), _line(item), item
    elif isinstance(node, MappingNode):
        first_lines: dict[object, int] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode):
                _check_scalar(key_node, path + (key_node.value[:MAX_NUMBER_CHARS],))
            key = _key(loader, key_node)
            if key is None:
                continue
            child_path = path + (key,)
            if key in first_lines:
                document.duplicates.append(DuplicateKey(child_path, _line(key_node), first_lines[key]))
            else:
                first_lines[key] = _line(key_node)
            # A repeated key is still walked: pyyaml keeps the last value, so its lines win.
            yield child_path, _line(key_node), value_node


def _key(loader: yaml.SafeLoader, key_node: Node) -> object | None:
    """The Python value of a scalar mapping key, or None for merge keys and complex keys."""
    if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
        return None
    # Construct as pyyaml will, so that `1:` and `"1":` stay different keys, as in the data.
    return loader.construct_object(key_node)


# --- pydantic error locations -> key paths -----------------------------------------------------

@dataclass(frozen=True)
class Location:
    """Where a pydantic error points: the YAML key path, and the model field found there, if any."""

    keys: KeyPath
    owner: type[BaseModel] | None  # the model whose key the last element of `keys` names
    field: FieldInfo | None


def locate(loc: tuple[Any, ...], root: type[BaseModel]) -> Location:
    """Follow a pydantic error `loc` from model `root` down, dropping discriminated-union tags.

    Pydantic names the chosen union member in `loc` (``('channels', 0, 'source', 'rtsp', 'url')``)
    though the YAML has no such level; walking the models tells a tag from a key.
    """
    keys: list[Any] = []
    at: Any = root
    owner, field, tags = None, None, {}
    for part in loc:
        if isinstance(part, str) and part in tags:
            at, tags = tags[part], {}
            continue
        keys.append(part)
        owner, field, at = _step(at, part)
        tags = tagged_models(field) if field is not None else {}
    return Location(tuple(keys), owner, field)


def tagged_models(field: FieldInfo) -> dict[str, type[BaseModel]]:
    """The members of a discriminated-union field by tag, e.g. ``{'rtsp': RtspSource, ...}``."""
    if not isinstance(field.discriminator, str):
        return {}
    members = [member for member in get_args(field.annotation)
               if isinstance(member, type) and issubclass(member, BaseModel)]
    return {get_args(member.model_fields[field.discriminator].annotation)[0]: member for member in members}


def _step(at: Any, part: Any) -> tuple[type[BaseModel] | None, FieldInfo | None, Any]:
    """One level down from annotation `at` by key or index `part`: (owner model, field, annotation)."""
    optional = [member for member in get_args(at) if member is not type(None)]
    if len(optional) == 1 and len(get_args(at)) == 2:  # `Model | None`: step into the model
        at = optional[0]
    if isinstance(at, type) and issubclass(at, BaseModel):
        field = at.model_fields.get(part) if isinstance(part, str) else None
        return at, field, field.annotation if field is not None else None
    if get_origin(at) is list and isinstance(part, int):
        return None, None, get_args(at)[0]
    return None, None, None
