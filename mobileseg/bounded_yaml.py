"""YAML (and JSON) settings files read within limits, so a hostile file is refused before anything is built.

A genotype, a search space or a profile is a few kilobytes and a few hundred values. Before
any of it is validated or built, `load_yaml` refuses a file whose size, number of values
(counted with every alias ``*name`` expanded, as the code that walks it will see them),
total characters, nesting depth or longest string is far beyond that, with one message
naming the file. Anchors and aliases stay usable for what they are for (one list of
alternatives reused by several cells); an "alias bomb" that expands to billions of values
is stopped after `Limits.max_values` of them, without being expanded.

Example:
    >>> bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\\n" + "".join(
    ...     f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\\n" for p, c in zip("abcdefgh", "bcdefghi"))
    >>> load_yaml(bomb, "bomb.yaml", error=ValueError)
    Traceback (most recent call last):
    ...
    ValueError: bomb.yaml: more than 100000 values once its aliases (*name) are expanded; a file of this kind has at most a few thousand
"""

from __future__ import annotations

import dataclasses
import os

import yaml

from mobileseg.short_repr import short_repr
from mobileseg.text_files import TextFileError, read_text, reported_as


@dataclasses.dataclass(frozen=True)
class Limits:
    """How large a settings file may be.

    Args:
        max_bytes: the file's size.
        max_values: values (mappings, lists, scalars), aliases expanded.
        max_chars: characters of all strings and keys together, aliases expanded.
        max_string: characters of one string or key.
        max_depth: nesting of mappings and lists.
    """

    max_bytes: int = 2 ** 20
    max_values: int = 100_000
    max_chars: int = 1_000_000
    max_string: int = 1000
    max_depth: int = 64


LIMITS = Limits()
"""The default: hundreds of times the largest space or genotype of the repository."""


def read_yaml(path: str | os.PathLike, *, error: type[Exception] = TextFileError, limits: Limits = LIMITS):
    """Read and parse a UTF-8 YAML/JSON file within ``limits``.

    Raises:
        ``error``: ``PATH: PROBLEM`` (`mobileseg.text_files.TextFileError` by default, with ``path`` and
            ``problem``): missing, unreadable, not UTF-8, not valid YAML, or beyond a limit.
    """
    with reported_as(error):
        return load_yaml(read_text(path, max_bytes=limits.max_bytes), str(path), limits=limits)


def load_yaml(text: str, source: str, *, error: type[Exception] = TextFileError, limits: Limits = LIMITS):
    """Parse YAML/JSON text within ``limits`` (`check_bounds`); problems are ``error("SOURCE: PROBLEM")``."""
    with reported_as(error):
        if len(text) > limits.max_bytes:
            raise TextFileError(source, f"{len(text)} characters, more than the {limits.max_bytes} a file of "
                                        "this kind may have")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as problem:
            raise TextFileError(source, f"not valid YAML: {problem}") from None
        except RecursionError:
            raise TextFileError(source, f"nested more than {limits.max_depth} levels deep") from None
        check_bounds(data, source, limits=limits)
        return data


def check_bounds(data, source: str, *, error: type[Exception] = TextFileError, limits: Limits = LIMITS) -> None:
    """Refuse parsed data beyond ``limits``, walking at most ``limits.max_values`` values (aliases expanded).

    Raises:
        ``error``: ``SOURCE: PROBLEM``, with the key path of a string that is too long.
    """
    too_many = (f"more than {limits.max_values} values once its aliases (*name) are expanded; a file of this "
                "kind has at most a few thousand")
    with reported_as(error):
        values, chars = 0, 0
        pending = [(data, "", 0)]
        while pending:
            node, path, depth = pending.pop()
            values += 1
            where = path or "the top level"
            if depth > limits.max_depth:
                raise TextFileError(source, f"{where}: nested more than {limits.max_depth} levels deep")
            if isinstance(node, (dict, list)) and values + len(pending) + 2 * len(node) > limits.max_values:
                raise TextFileError(source, too_many)
            if isinstance(node, dict):
                for key, value in node.items():
                    name = key if isinstance(key, str) and len(key) <= 40 else short_repr(key, 40)
                    key_path = f"{path}.{name}" if path else str(name)
                    pending += [(key, key_path, depth + 1), (value, key_path, depth + 1)]
            elif isinstance(node, list):
                pending.extend((value, f"{path}[{index}]", depth + 1) for index, value in enumerate(node))
            elif isinstance(node, str):
                chars += len(node)
                if len(node) > limits.max_string:
                    raise TextFileError(source, f"{where}: a string of {len(node)} characters; at most "
                                                f"{limits.max_string} are allowed")
                if chars > limits.max_chars:
                    raise TextFileError(source, f"more than {limits.max_chars} characters of text once its "
                                                "aliases (*name) are expanded")
