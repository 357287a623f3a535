"""``bench.critical_path``: critical path and simulated schedule of a task graph, and the cost calibration."""

from __future__ import annotations

import pytest

from unetgan_bench.bench import critical_path as cp
from unetgan_bench.bench.plan import Task, build_plan
from unetgan_bench.bench.registries import open_source
from unetgan_bench.bench.suite import load_suite


def _graph() -> tuple[list[Task], dict[str, float]]:
    """a(3) -> b(2) -> d(1) <- c(4): the chain a, b, d (6 s) is longer than c, d (5 s)."""
    tasks = [Task("unet", "a", {}), Task("unet", "c", {}), Task("translator", "b", {}, ("a",))]
    tasks.append(Task("segmentation", "d", {}, ("b", "c")))
    return tasks, {"a": 3.0, "b": 2.0, "c": 4.0, "d": 1.0}


def test_the_critical_path_is_the_longest_chain_of_dependent_tasks() -> None:
    tasks, cost = _graph()
    assert cp.critical_path(tasks, cost) == (6.0, ["a", "b", "d"])
    assert cp.critical_path([], {}) == (0.0, [])


def test_a_simulated_schedule_waits_for_dependencies_and_free_workers() -> None:
    tasks, cost = _graph()
    assert cp.simulate(tasks, cost, 1) == 10.0  # one worker does all the work in turn
    assert cp.simulate(tasks, cost, 2) == 6.0  # a and c at once; b after a; d after b and c
    assert cp.simulate(tasks, cost, 8) == 6.0  # never shorter than the critical path
    independent = [Task("unet", k, {}) for k in "wxyz"]
    assert cp.simulate(independent, dict.fromkeys("wxyz", 5.0), 3) == 10.0


@pytest.fixture(scope="module")
def plans():
    def plan(name):
        suite = load_suite(name)
        return build_plan(suite, open_source(suite, suite.path))

    return plan("quick"), plan("paper")


def test_costs_calibrated_on_quick_give_back_its_measured_stage_times(plans) -> None:
    quick, _ = plans
    cost = cp.task_costs(quick, cp.calibration(quick))
    for kind, wall in cp.REFERENCE_WALL_S.items():
        total = sum(cost[t.key] for t in quick.of_kind(kind))
        # The seconds were measured at 14 Unet epochs and 140 translator steps; quick now trains less.
        name, measured = cp.REFERENCE_SETTINGS.get(kind, ("", 1))
        now = quick.of_kind(kind)[0].config["config"][name] if name else 1
        assert total == pytest.approx(wall * cp.REFERENCE_JOBS[kind] * now / measured)


def test_paper_graph_cost_is_bounded_by_its_critical_path(plans) -> None:
    quick, paper = plans
    result = cp.graph_cost(paper, quick, workers=(1, 8, 1000))
    assert result.makespan_s[1] == pytest.approx(result.total_s)
    assert result.critical_s < result.makespan_s[8] < result.total_s
    assert result.makespan_s[1000] == pytest.approx(result.critical_s)
    assert result.speedup(8) <= 8 and result.speedup(1000) == pytest.approx(result.best_speedup)
    assert result.critical_kinds[:2] == ["unet", "translator"]
    # 192 px and 35 epochs against quick's 64 px and 11 epochs: each paper Unet costs hundreds of quick Unets.
    unet_cost = cp.task_costs(paper, cp.calibration(quick))
    quick_cost = cp.task_costs(quick, cp.calibration(quick))
    assert unet_cost[paper.of_kind("unet")[0].key] > 100 * quick_cost[quick.of_kind("unet")[0].key]
