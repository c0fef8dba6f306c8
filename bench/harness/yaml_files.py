"""Reading experiment files: YAML with bounds, `include:` and `${VAR}` (bench/core/config.py builds the
dataclasses from the tree these return).

`parse_yaml` is yaml.safe_load that refuses duplicate keys, alias bombs and absurd nesting before
anything walks the tree. `load_with_includes` reads a file and the files it includes (keys of the
including file win; mappings merge, lists are replaced whole) and records which file wrote each key.
`expand_env` fills `${VAR}` and `${VAR:-default}` in string values from the environment.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from bench.core.schema import ConfigError, KeyPath, Origins, format_key_path

# Bounds on what an experiment file may expand to: a hostile or broken file (a YAML "billion laughs"
# alias bomb, thousands of nesting levels) is refused before anything walks it.
MAX_YAML_VALUES = 100_000    # values after expanding aliases (the paper's main.yaml has about 200)
MAX_YAML_DEPTH = 40          # nesting levels


def _check_nodes(root: yaml.Node, source: str) -> None:
    """Refuse duplicate keys, alias expansions beyond MAX_YAML_VALUES and nesting beyond MAX_YAML_DEPTH.
    Works on the composed node graph, where an alias is a second reference to one node: each node is
    visited once and its expanded size is memoised, so an alias bomb costs no time or memory here."""
    sizes: dict[int, tuple[int, int]] = {}   # id(node) -> (values when expanded, depth)

    def visit(node: yaml.Node) -> tuple[int, int]:
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = (1, 1)   # a node that contains itself (a recursive alias) counts once
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, yaml.Node] = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    if key_node.value in seen:
                        first = seen[key_node.value].start_mark.line + 1
                        raise ConfigError(f"{source}: line {key_node.start_mark.line + 1}: key {key_node.value!r} is "
                                          f"written twice in one mapping (first on line {first}); keep one")
                    seen[key_node.value] = key_node
                children += [key_node, value_node]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        total, depth = 1, 1
        for child in children:
            child_total, child_depth = visit(child)
            total, depth = total + child_total, max(depth, child_depth + 1)
        sizes[id(node)] = (total, depth)
        if total > MAX_YAML_VALUES:
            raise ConfigError(f"{source}: line {node.start_mark.line + 1}: the file expands to more than "
                              f"{MAX_YAML_VALUES:,} values (YAML aliases referring to aliases?); refused")
        if depth > MAX_YAML_DEPTH:
            raise ConfigError(f"{source}: line {node.start_mark.line + 1}: nested more than {MAX_YAML_DEPTH} levels deep; refused")
        return total, depth

    visit(root)


def _one_line(error: yaml.YAMLError) -> str:
    """A YAML error as one line: where, and what is wrong."""
    mark = getattr(error, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    context = getattr(error, "context", None)
    return f"{where}{problem}" + (f" ({context})" if context else "")


def parse_yaml(text: str, source: str) -> Any:
    """yaml.safe_load with the checks of `_check_nodes`; errors are ConfigError naming `source`."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node, source)
        return loader.construct_document(node)
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML: {_one_line(error)}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to read (more than {MAX_YAML_DEPTH} levels are refused)") from None
    finally:
        loader.dispose()


def read_yaml(path: Path, included_from: str | None) -> dict:
    where = f" (included from {included_from})" if included_from else ""
    if path.exists() and not path.is_file():   # a folder, FIFO, socket or device: reading it would block or fail
        kind = "a folder" if path.is_dir() else "a FIFO (named pipe)" if path.is_fifo() else \
            "a socket" if path.is_socket() else "a device" if path.is_block_device() or path.is_char_device() else "not a file"
        raise ConfigError(f"{path}: is {kind}, not an experiment file{where}; give the path of a YAML file")
    if not path.is_file():
        existing = sorted(str(p) for p in path.parent.glob("*.yaml")) if path.parent.is_dir() else []
        hint = f"; experiment files in {path.parent}: {', '.join(existing)}" if existing else ""
        raise ConfigError(f"{path}: experiment file not found{where}{hint}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start} is {error.object[error.start:error.start + 1]!r})"
                          f"{where}; save the file as UTF-8") from None
    tree = parse_yaml(text, f"{path}{where}")
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(tree).__name__}{where}")
    return tree


def _merge(base: Any, top: Any) -> Any:
    """Deep-merge mappings (keys of `top` win); any other value in `top` replaces `base` whole."""
    if isinstance(base, dict) and isinstance(top, dict):
        merged = dict(base)
        for key, value in top.items():
            merged[key] = _merge(base[key], value) if key in base else value
        return merged
    return top


def load_with_includes(path: Path, origins: Origins, chain: tuple[Path, ...] = ()) -> dict:
    path = Path(os.path.abspath(path))
    if path in chain:
        cycle = " -> ".join(str(p) for p in chain + (path,))
        raise ConfigError(f"{chain[-1]}: include: circular include: {cycle}")
    tree = read_yaml(path, str(chain[-1]) if chain else None)
    includes = tree.pop("include", None)
    if includes is None:
        includes = []
    elif isinstance(includes, str):
        includes = [includes]
    elif not (isinstance(includes, list) and all(isinstance(item, str) for item in includes)):
        raise ConfigError(f"{path}: include: expected a file path or a list of file paths, got {includes!r}")

    merged: dict = {}
    for include in includes:
        base_origins = Origins()
        base = load_with_includes(path.parent / include, base_origins, chain + (path,))
        merged = _merge(merged, base)
        origins.by_path.update(base_origins.by_path)
    origins.record(tree, str(path))
    return _merge(merged, tree)


_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(tree: Any, origins: Origins, path: KeyPath = ()) -> Any:
    if isinstance(tree, dict):
        return {key: expand_env(value, origins, path + (key,)) for key, value in tree.items()}
    if isinstance(tree, list):
        return [expand_env(value, origins, path + (index,)) for index, value in enumerate(tree)]
    if not isinstance(tree, str):
        return tree

    def replace(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{origins.source_of(path)}: {format_key_path(path)}: environment variable ${{{name}}} is not set; "
            f"set it, or write ${{{name}:-default}} to give a default"
        )

    return _ENV_PATTERN.sub(replace, tree)
