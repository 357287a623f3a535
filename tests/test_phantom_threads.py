"""Rendering on several threads gives exactly the images of one thread (each image has its own seeds)."""

from __future__ import annotations

import numpy as np
import pytest

from unetgan_core.data.phantom import render, render_subjects
from unetgan_core.data.phantom.styles import STYLES


def _render(monkeypatch, threads: int):
    monkeypatch.setattr(render, "render_threads", lambda n_tasks: min(threads, n_tasks))
    # 3 subjects x 7 slices x 2 phases = 42 images: several chunks of BATCH, the last one partial.
    return render_subjects(["a", "b", "c"], [1, 2, 3], [4, 5, 6], STYLES.get("ge"), size_px=32, slices=7)


def test_threads_change_nothing(monkeypatch):
    one, two = _render(monkeypatch, 1), _render(monkeypatch, 2)
    assert len(one) == 42 > render.BATCH and 42 % render.BATCH
    np.testing.assert_array_equal(one.images, two.images)
    np.testing.assert_array_equal(one.labels, two.labels)
    assert one.images.dtype == np.float32 and 0.0 <= one.images.min() and one.images.max() <= 1.0


@pytest.mark.parametrize(
    "omp, cores, tasks, expected", [(None, 2, 5, 2), ("1", 2, 5, 1), (None, 16, 3, 3), ("x", 2, 1, 1)]
)
def test_thread_count_follows_cores_omp_and_tasks(monkeypatch, omp, cores, tasks, expected):
    monkeypatch.setattr(render.os, "sched_getaffinity", lambda pid: set(range(cores)))
    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    assert render.render_threads(tasks) == expected
