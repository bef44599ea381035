"""Settings files within limits: hostile YAML is refused quickly, before anything is built from it."""

import time
from pathlib import Path

import pytest

from mobileseg.bounded_yaml import Limits, check_bounds, load_yaml, read_yaml
from mobileseg.text_files import TextFileError

REPO = Path(__file__).resolve().parents[1]
BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))  # 10**9 strings


class SpaceError(ValueError):
    """A command's own error type."""


def test_an_alias_bomb_is_refused_without_being_expanded():
    started = time.perf_counter()
    with pytest.raises(SpaceError, match=r"^bomb\.yaml: more than 100000 values once its aliases \(\*name\) are "):
        load_yaml(BOMB, "bomb.yaml", error=SpaceError)
    assert time.perf_counter() - started < 2.0


def test_a_self_referencing_alias_is_refused():
    with pytest.raises(TextFileError, match="loop.yaml: .*nested more than 64 levels deep"):
        load_yaml("cells: &cells [{op: conv}, *cells]\n", "loop.yaml")


def test_a_long_string_is_refused_naming_its_key_path_and_not_printed():
    text = "name: net\nbranches:\n  - {name: " + "x" * 10_000_000 + "}\n"
    with pytest.raises(TextFileError) as error:
        load_yaml(text, "net.yaml")
    assert str(error.value) == f"net.yaml: {len(text)} characters, more than the 1048576 a file of this kind may have"
    with pytest.raises(TextFileError) as error:
        load_yaml(text.replace("x" * 10_000_000, "x" * 5000), "net.yaml")
    assert str(error.value) == "net.yaml: branches[0].name: a string of 5000 characters; at most 1000 are allowed"


def test_deep_nesting_is_refused():
    with pytest.raises(TextFileError, match="deep.yaml: nested more than 64 levels deep"):
        load_yaml("[" * 5000 + "]" * 5000, "deep.yaml")
    with pytest.raises(TextFileError, match=r"deep.yaml: \[0\]\[0\].*: nested more than 64 levels deep"):
        load_yaml("[" * 80 + "]" * 80, "deep.yaml")


def test_the_total_text_once_expanded_is_bounded():
    text = "s: &s " + "y" * 900 + "\nlist: [" + ", ".join(["*s"] * 2000) + "]\n"
    with pytest.raises(TextFileError, match="more than 1000000 characters of text once its aliases"):
        load_yaml(text, "long.yaml")
    check_bounds(load_yaml(text, "long.yaml", limits=Limits(max_chars=2_000_000)), "long.yaml", error=ValueError,
                 limits=Limits(max_chars=2_000_000))


def test_the_repository_s_files_and_their_aliases_are_within_the_limits():
    for path in [*REPO.glob("search_space/**/*.yaml"), *REPO.glob("export/*.yaml")]:
        assert isinstance(read_yaml(path, error=SpaceError), dict), path
    space = read_yaml(REPO / "search_space" / "default.yaml")
    assert space["branches"][0]["cells"][4] == space["branches"][0]["cells"][5]  # &cell8, then *cell8


def test_a_file_that_is_not_utf8_or_not_yaml_is_named(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(SpaceError, match=r"space\.yaml: not UTF-8 text \(byte 0xe9 on line 1\)"):
        read_yaml(path, error=SpaceError)
    path.write_text("name: [unclosed\n")
    with pytest.raises(SpaceError, match=r"space\.yaml: not valid YAML: "):
        read_yaml(path, error=SpaceError)
