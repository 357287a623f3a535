"""The configuration loader: types, bounds and the numeric policy on a small hand-made section."""

from __future__ import annotations

import dataclasses
import math

import pytest

from unetgan_core.errors import UserError
from unetgan_core.names import check_name
from unetgan_core.schema import check_fields, describe, field, load_table


@dataclasses.dataclass(frozen=True)
class Toy:
    count: int = field(1, doc="a count", ge=1, le=10)
    rate: float = field(0.5, doc="a rate", gt=0.0, le=1.0)
    limit: float = field(math.inf, doc="may be infinite", finite=False)
    sizes: tuple[int, ...] = field((2,), doc="sizes", one_or_many=True, nonempty=True, ge=1)
    pair: tuple[float, float] = field((0.0, 1.0), doc="a pair")

    def __post_init__(self) -> None:
        check_fields(self)


def test_values_are_converted_to_the_declared_types() -> None:
    toy = load_table(Toy, {"rate": 1, "sizes": 4, "pair": [1, 2]}, "t.toml: [toy]")
    assert toy.rate == 1.0 and isinstance(toy.rate, float)
    assert toy.sizes == (4,) and toy.pair == (1.0, 2.0)
    assert load_table(Toy, {"limit": math.inf}, "t").limit == math.inf  # the field allows it


@pytest.mark.parametrize(
    "table, message",
    [
        ({"count": 0}, "t.toml: [toy] count: expected a value >= 1, got 0"),
        ({"count": 11}, "t.toml: [toy] count: expected a value <= 10, got 11"),
        ({"count": True}, "t.toml: [toy] count: expected an integer, got True"),
        ({"rate": math.nan}, "t.toml: [toy] rate: expected a finite number, got nan"),
        ({"sizes": []}, "t.toml: [toy] sizes: expected a non-empty list, got []"),
        ({"sizes": [3, 0]}, "t.toml: [toy] sizes: expected a value >= 1, got [3, 0]"),
        ({"pair": [1.0]}, "t.toml: [toy] pair: expected a list of 2 values (a number, a number), got [1.0]"),
        ({"other": 1}, "t.toml: [toy]: unknown key 'other'; allowed: count, limit, pair, rate, sizes"),
        ([1], "t.toml: [toy]: expected a table, got list"),
    ],
)
def test_bad_values_give_one_line_naming_table_and_key(table, message) -> None:
    with pytest.raises(UserError) as info:
        load_table(Toy, table, "t.toml: [toy]")
    assert str(info.value) == message


def test_direct_construction_obeys_the_same_bounds() -> None:
    with pytest.raises(UserError, match="rate: expected a value <= 1.0, got 2.0"):
        Toy(rate=2.0)


def test_describe_lists_type_bounds_default_and_doc() -> None:
    rows = {key: (kind, default, doc) for key, kind, default, doc in describe(Toy)}
    assert rows["count"] == ("an integer (ge 1, le 10)", 1, "a count")


@pytest.mark.parametrize("name", ["philips", "noisy_ge.v2", "A-1"])
def test_safe_names_pass(name: str) -> None:
    assert check_name("style", name, "[vendors] styles") == name


@pytest.mark.parametrize("name", ["", "a/b", "..", "a..b", ".hidden", "-x", "a\x00b", "x" * 65, 3])
def test_unsafe_names_are_refused(name) -> None:
    with pytest.raises(UserError, match=r"^\[vendors\] styles: style .* is not allowed; a name is 1-64 characters"):
        check_name("style", name, "[vendors] styles")
