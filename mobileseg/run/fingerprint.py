"""Stable fingerprints: the hash of a text, of a JSON-able thing, of a file, of a genotype.

Python's ``hash`` of a string changes from process to process; these do not. Every hash the
package keeps (in ``config.yaml``, an Optuna study, the latency cache, file names) is made here, so
that one value is computed one way. The algorithm and the length stay what each caller first
persisted (sha1 for genotype keys and the study's space, sha256 elsewhere), so that existing run
folders, studies and caches keep their keys (``tests/run/test_fingerprint.py`` pins them).

Example:
    >>> json_digest({"b": 1, "a": [1, 2]}, length=12) == json_digest({"a": [1, 2], "b": 1}, length=12)
    True
    >>> text_digest("abc", "sha1")
    'a9993e364706816aba3e25717850c26c9cd0d89d'
"""

from __future__ import annotations

import hashlib
import json
import os

CHUNK = 1 << 20
"""Bytes read at a time by `file_digest`."""


def text_digest(data: str | bytes, algorithm: str = "sha256", length: int | None = None) -> str:
    """The hex digest of ``data`` (a str is UTF-8 encoded), its first ``length`` characters when given."""
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.new(algorithm, raw).hexdigest()[:length]


def canonical_json(data) -> str:
    """``data`` as JSON with sorted keys (equal data, equal text); a value JSON cannot hold is written as its ``str``.

    Example:
        >>> canonical_json({"b": (1, 2), "a": None})
        '{"a": null, "b": [1, 2]}'
    """
    return json.dumps(data, sort_keys=True, default=str)


def json_digest(data, algorithm: str = "sha256", length: int | None = None) -> str:
    """The `text_digest` of `canonical_json` of ``data``."""
    return text_digest(canonical_json(data), algorithm, length)


def file_digest(path: str | os.PathLike, algorithm: str = "sha256", length: int | None = None) -> str:
    """The hex digest of a file's bytes (read in chunks), its first ``length`` characters when given."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()[:length]


def genotype_text(genotype) -> str:
    """A genotype's architecture (its name excluded) as `canonical_json`: equal networks, equal text."""
    from mobileseg.arch import schema_io

    data = schema_io.to_dict(genotype)
    data.pop("name", None)
    return canonical_json(data)


def genotype_key(genotype) -> str:
    """A genotype's fingerprint: the sha1 of its `genotype_text`, 40 hex digits.

    The search's caches, seeds and results (``pareto.json``'s ``key``) use it: the same network
    under two names has one key.

    Example:
        >>> import dataclasses
        >>> from mobileseg.arch import schema_io
        >>> g = schema_io.loads('''
        ... name: a
        ... branches: [{name: main, source: null, cells: [{op: conv, width: 8, stride: 2}]}]
        ... head: {op: light, inputs: [{branch: main}], width: 8}
        ... ''')
        >>> genotype_key(g) == genotype_key(dataclasses.replace(g, name="b")), len(genotype_key(g))
        (True, 40)
    """
    return text_digest(genotype_text(genotype), "sha1")


def arch_sha256(genotype) -> str:
    """The sha256 of a genotype's YAML text (`mobileseg.arch.schema_io.dumps`, its name included).

    The train step records it in ``config.yaml`` (``train.arch_sha256``) and refuses to resume a
    run folder holding another network.
    """
    from mobileseg.arch import schema_io

    return text_digest(schema_io.dumps(genotype))
