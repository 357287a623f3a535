"""Post-processing of predicted label maps (unetgan_core/postprocess.py, ``[metrics] postprocess``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_nested import NESTED_SUITE
from tiny_suites import tiny_text

from unetgan_bench.bench.nested import parse_candidate, run_nested
from unetgan_bench.bench.plan import build_plan
from unetgan_bench.bench.registries import open_source
from unetgan_bench.bench.rows import resolved_config
from unetgan_bench.bench.store import ArtifactStore
from unetgan_bench.bench.suite import parse_suite
from unetgan_core.errors import UserError
from unetgan_core.postprocess import POSTPROCESS, largest_component, postprocess

CORRUPTIONS = '\n[corruptions]\ncorruptions = ["noise"]\nseverities = [1]\nn_images = 2\n'


def ring(size: int = 12, centre: tuple[int, int] = (6, 6)) -> np.ndarray:
    """A blood pool (1) of radius < 2.5 inside a myocardial ring (2) out to radius 4.5 (pixels)."""
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - centre[0], xx - centre[1])
    out = np.zeros((size, size), dtype=np.uint8)
    out[r < 4.5] = 2
    out[r < 2.5] = 1
    return out


def test_a_single_ventricle_is_unchanged_and_an_empty_map_stays_empty():
    one = ring()
    assert np.array_equal(largest_component(one), one)
    empty = np.zeros((2, 8, 8), dtype=np.uint8)
    assert np.array_equal(largest_component(empty), empty)
    # A batch: each image on its own; the input is not modified, shape and dtype are kept.
    batch = np.stack([one, np.zeros_like(one)])
    out = largest_component(batch)
    assert out.dtype == batch.dtype and out.shape == batch.shape
    assert np.array_equal(out, batch)


def test_islands_outside_the_largest_ventricle_become_background():
    pred = np.zeros((20, 20), dtype=np.uint8)
    pred[:12, :12] = ring()
    pred[16:18, 16:18] = 1  # a blood-pool island far away
    pred[15, 2:5] = 2  # a myocardium island
    pred[19, 0] = 3  # the right ventricle is left alone
    before = pred.copy()
    out = largest_component(pred)
    assert np.array_equal(pred, before)
    expected = before.copy()
    expected[16:18, 16:18] = 0
    expected[15, 2:5] = 0
    assert np.array_equal(out, expected)


def test_a_diagonal_neighbour_is_connected_and_a_pool_island_in_the_ring_becomes_myocardium():
    pred = ring()
    pred[10, 10] = 1  # touches the ring only at a corner (8-connected): part of the ventricle
    pred[2, 6] = 1  # a blood-pool pixel inside the myocardium, apart from the main pool
    out = largest_component(pred)
    assert out[10, 10] == 2 and out[2, 6] == 2
    assert (out == 1).sum() == (ring() == 1).sum()
    assert np.array_equal(out > 0, pred > 0)  # the ventricle's outline is kept


def test_the_larger_of_two_ventricles_is_kept():
    small = ring(8, (4, 4))
    small[(small == 2) & (np.arange(8)[:, None] > 5)] = 0  # smaller than a full ring
    pred = np.zeros((12, 24), dtype=np.uint8)
    pred[:, :12] = ring()
    pred[:8, 14:22] = small
    out = largest_component(pred)
    assert np.array_equal(out[:, :12], ring()) and not out[:, 12:].any()


def test_none_returns_the_predictions_and_unknown_rules_are_refused(tmp_path):
    pred = ring()
    assert postprocess(pred, "none") is pred
    text = tiny_text(targets=(), scenarios=("clean",)) + '\n[metrics]\npostprocess = "biggest"\n'
    with pytest.raises(UserError) as err:
        parse_suite(text, "s.toml")
    message = str(err.value)
    assert "\n" not in message and "postprocess" in message
    assert "none" in message and "largest_component" in message


def _plan(text: str):
    suite = parse_suite(text, "s.toml")
    return build_plan(suite, open_source(suite, "s.toml"))


def test_the_rule_enters_measured_cells_keys_and_rows_but_not_unets():
    base = tiny_text(targets=(), scenarios=("clean",), extra=CORRUPTIONS)
    plain, default = _plan(base), _plan(base + '\n[metrics]\npostprocess = "none"\n')
    lcc = _plan(base + '\n[metrics]\npostprocess = "largest_component"\n')
    # "none" (the default) leaves every key as it was: nothing about post-processing is in any config.
    assert [t.key for t in plain.tasks] == [t.key for t in default.tasks]
    assert not any("postprocess" in t.config for t in plain.tasks)
    assert "postprocess" not in plain.suite.resolved()["metrics"]  # a run folder's recorded configuration too
    assert lcc.suite.resolved()["metrics"]["postprocess"] == "largest_component"
    # A scoring step: the same trained Unets.
    assert [t.key for t in plain.of_kind("unet")] == [t.key for t in lcc.of_kind("unet")]
    for kind in ("segmentation", "corruption"):
        before, after = plain.of_kind(kind), lcc.of_kind(kind)
        assert before and len(before) == len(after)
        assert not {t.key for t in before} & {t.key for t in after}
        assert all(t.config["postprocess"] == "largest_component" for t in after)
        assert resolved_config(lcc, after[0])["postprocess"] == "largest_component"


def test_a_candidate_that_only_post_processes_trains_nothing_new(tmp_path: Path):
    path = tmp_path / "nested.toml"
    path.write_text(NESTED_SUITE.replace("FOLDS", "2"))
    notes: list[str] = []
    candidate = parse_candidate('metrics.postprocess="largest_component"')
    result = run_nested(str(path), [candidate], ArtifactStore(tmp_path / "cache"), note=notes.append)
    inner = [r for r in result["rows"] if r["phase"] == "inner"]
    by_fold = {(r["fold"], r["candidate"]): r["unet_key"] for r in inner}
    assert (
        by_fold[(0, "suite")] == by_fold[(0, candidate.name)] != by_fold[(1, "suite")] == by_fold[(1, candidate.name)]
    )
    # Two inner and two outer Unets: one per fold each, whichever candidate a fold chooses.
    assert sum(n.startswith("  trained") for n in notes) == 4


class Fixed:
    """A pipeline that predicts the same label maps, ``ring()`` plus a stray blood-pool island, for any input."""

    def __init__(self, n: int):
        pred = np.zeros((n, 20, 20), dtype=np.uint8)
        pred[:, :12, :12] = ring()
        pred[:, 16:19, 16:19] = 1
        self.pred = pred

    def predict(self, images, fast=False):
        return np.concatenate([self.pred] * (len(images) // len(self.pred)))


def test_cells_score_the_post_processed_predictions():
    from unetgan_bench.bench.steps import evaluate_corruption, evaluate_segmentation
    from unetgan_core.data.sliceset import SliceSet

    labels = np.zeros((2, 20, 20), dtype=np.uint8)
    labels[:, :12, :12] = ring()
    one = np.ones(2, bool)
    test = SliceSet(
        np.full((2, 20, 20), 0.5, np.float32), labels, np.array(["a", "b"]), "v", 2.0, one, one, np.arange(2),
        np.array(["ED", "ES"]), True,
    )  # fmt: skip
    raw, _ = evaluate_segmentation(Fixed(2), test, {"hd95": False})
    clean, metrics = evaluate_segmentation(Fixed(2), test, {"hd95": False, "postprocess": "largest_component"})
    assert (raw["dice_blood_pool"] < 1).all() and (clean["dice_blood_pool"] == 1).all()
    assert metrics["dice_mean"] == 1.0
    cfg = {"corruption": "noise", "severities": [0, 1], "n_images": 2, "seed": 0}
    rows = {rule: evaluate_corruption(Fixed(2), test, {**cfg, "postprocess": rule})[0] for rule in POSTPROCESS}
    assert [r["metrics"]["dice_mean"] for r in rows["largest_component"]] == [1.0, 1.0]
    assert all(r["metrics"]["dice_mean"] < 1 for r in rows["none"])
