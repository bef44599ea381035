"""Values in error messages are cut short, however large or self-referential they are."""

import time

import yaml

from mobileseg.short_repr import LIMIT, short_repr


def test_a_huge_string_is_cut_to_the_limit():
    text = short_repr("w" * 10_000_000)
    assert len(text) <= LIMIT and text.startswith("'www")


def test_an_alias_bomb_is_shown_without_being_expanded():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    value = yaml.safe_load(bomb)["i"]  # a billion strings once expanded
    started = time.perf_counter()
    text = short_repr(value)
    assert len(text) <= LIMIT and time.perf_counter() - started < 1.0


def test_small_values_are_shown_as_repr_shows_them():
    assert short_repr({"width": "16"}) == "{'width': '16'}" and short_repr(3) == "3"
