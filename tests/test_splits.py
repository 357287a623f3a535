"""Subject splits: deterministic, disjoint, sized as asked."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unetgan_core.data.splits import split_subjects
from unetgan_core.errors import UserError

SUBJECTS = [f"philips-{i:03d}" for i in range(44)]


def test_fractions_of_44_give_the_papers_35_and_9():
    split = split_subjects(SUBJECTS, {"train": 0.8, "test": 0.2}, seed=0)
    assert (len(split["train"]), len(split["test"])) == (35, 9)
    assert sorted(split["train"] + split["test"]) == SUBJECTS


def test_counts_leave_the_rest_unassigned():
    split = split_subjects(SUBJECTS, {"train": 10, "val": 5}, seed=1)
    assert (len(split["train"]), len(split["val"])) == (10, 5)
    assert not set(split["train"]) & set(split["val"])


def test_same_seed_same_split_any_input_order_other_seed_differs():
    a = split_subjects(SUBJECTS, {"train": 30, "test": 14}, seed=3)
    b = split_subjects(list(reversed(SUBJECTS)), {"train": 30, "test": 14}, seed=3)
    c = split_subjects(SUBJECTS, {"train": 30, "test": 14}, seed=4)
    assert a == b
    assert a != c


def test_partial_fractions_round_down():
    split = split_subjects(SUBJECTS[:10], {"train": 0.55, "val": 0.25}, seed=0)
    assert (len(split["train"]), len(split["val"])) == (5, 2)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 60),
    parts=st.lists(st.integers(1, 10), min_size=1, max_size=4),
    seed=st.integers(0, 10**6),
)
def test_full_fraction_splits_partition_the_subjects(n, parts, seed):
    subjects = [f"s{i}" for i in range(n)]
    fractions = {f"part{i}": p / sum(parts) for i, p in enumerate(parts)}
    fractions[next(iter(fractions))] += 1.0 - sum(fractions.values())  # exact sum of 1
    split = split_subjects(subjects, fractions, seed)
    flat = [s for names in split.values() for s in names]
    assert sorted(flat) == sorted(subjects)
    for name, frac in fractions.items():
        assert abs(len(split[name]) - frac * n) < len(parts)


@pytest.mark.parametrize(
    "sizes, message",
    [
        ({}, "at least one split"),
        ({"train": 40, "test": 10}, "add up to 50 but there are only 44"),
        ({"train": 0.8, "test": 0.3}, "add up to 1.1 > 1"),
        ({"train": 30, "test": 0.2}, "all integer counts or all fractions"),
        ({"train": -1}, ">= 0"),
        ({"train": True}, "all integer counts or all fractions"),
    ],
)
def test_bad_sizes_raise_user_error(sizes, message):
    with pytest.raises(UserError, match=message):
        split_subjects(SUBJECTS, sizes, seed=0)


def test_duplicate_subjects_are_rejected():
    with pytest.raises(UserError, match="'a' appears more than once"):
        split_subjects(["a", "b", "a"], {"x": 1}, seed=0)
