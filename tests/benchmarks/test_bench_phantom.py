"""Phantom generation speed: the full chain at 192 x 192 in every registered style, and a cached load.

Run: python -m pytest tests/benchmarks/test_bench_phantom.py --benchmark-enable --benchmark-only

Each render case makes 64 images (4 subjects x 8 slices x 2 phases) exactly as a suite does
(``render_subjects``: scene, rasterising, acquisition chain, normalisation) and records
``images_per_s`` (64 / median round time) and ``threads``: the rendering threads it used, either
every usable core (``render_threads``, what the suites get) or one. The two steps that keep a
reference implementation beside their fast one (numpy's percentile in ``normalise_images``, the
float64 transfer formula) are also timed against it in the same process, interleaved, and record
``speedup_vs_reference``; both cases assert that the outputs are identical.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest

from unetgan_core.data.normalise import normalise_images, normalise_stored_integers
from unetgan_core.data.phantom import render, render_subjects
from unetgan_core.data.phantom.styles import STYLES
from unetgan_core.data.phantom.transfer import _exact, transfer_and_quantise
from unetgan_core.data.sources import create_source

N_SUBJECTS, N_SLICES = 4, 8  # 4 x 8 x 2 phases = 64 images
N_IMAGES = N_SUBJECTS * N_SLICES * 2


@pytest.mark.parametrize("threads", ["all", "one"])
@pytest.mark.parametrize("style", sorted(STYLES.names()))
def test_render_64_images_192px(benchmark, monkeypatch, style, threads):
    if threads == "one":
        monkeypatch.setattr(render, "render_threads", lambda n_tasks: 1)
    chunks = -(-N_IMAGES // render.BATCH)

    def run():
        return render_subjects(
            [f"s{i}" for i in range(N_SUBJECTS)],
            list(range(N_SUBJECTS)),
            list(range(N_SUBJECTS)),
            STYLES.get(style),
            size_px=192,
            slices=N_SLICES,
        )

    out = benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    assert len(out) == N_IMAGES
    benchmark.extra_info.update(style=style, size_px=192, images=N_IMAGES, threads=render.render_threads(chunks))
    if benchmark.stats:
        benchmark.extra_info["images_per_s"] = N_IMAGES / benchmark.stats.stats.median


def _speedup(reference, fast, rounds: int = 7) -> float:
    """Median time of ``reference`` over that of ``fast``, the two run alternately in this process."""
    times: dict[str, list[float]] = {"reference": [], "fast": []}
    for _ in range(rounds):
        for name, fn in (("reference", reference), ("fast", fast)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return statistics.median(times["reference"]) / statistics.median(times["fast"])


def _stored_integers(count: int = 32, levels: int = 4096) -> np.ndarray:
    """A chunk of 192 px images of stored integers with a skewed histogram, like the phantom's."""
    rng = np.random.default_rng(0)
    return np.floor(rng.gamma(2.0, levels / 12, (count, 192, 192))).clip(0, levels - 1).astype(np.float32)


def test_histogram_normalisation_of_32_images_192px(benchmark):
    raw = _stored_integers()
    np.testing.assert_array_equal(normalise_stored_integers(raw, 4096), normalise_images(raw))
    benchmark.pedantic(lambda: normalise_stored_integers(raw, 4096), rounds=5, warmup_rounds=1)
    benchmark.extra_info["speedup_vs_reference"] = _speedup(
        lambda: normalise_images(raw), lambda: normalise_stored_integers(raw, 4096)
    )


def test_transfer_curve_of_32_images_192px(benchmark):
    rng = np.random.default_rng(1)
    magnitude = rng.gamma(2.0, 0.12, (32, 192, 192)).astype(np.float32)
    full_scale, gamma, bits = np.full(32, 1.0), rng.uniform(0.45, 0.55, 32), np.full(32, 12)
    col = (slice(None), None, None)

    def reference():
        return _exact(magnitude, (1.0 / full_scale)[col], gamma[col], (2.0**bits - 1.0)[col])

    def fast():
        return transfer_and_quantise(magnitude, full_scale, gamma, bits)

    np.testing.assert_array_equal(fast(), reference())
    benchmark.pedantic(fast, rounds=5, warmup_rounds=1)
    benchmark.extra_info["speedup_vs_reference"] = _speedup(reference, fast)


def test_cached_load_64_images_192px(benchmark, tmp_path):
    src = create_source(
        "phantom", size_px=192, subjects_per_vendor=N_SUBJECTS, slices_per_subject=N_SLICES, cache_dir=tmp_path
    )
    src.load("ge", src.subjects("ge"))  # generate once

    out = benchmark(lambda: src.load("ge", src.subjects("ge")))
    assert len(out) == N_IMAGES
    if benchmark.stats:
        benchmark.extra_info["images_per_s"] = N_IMAGES / benchmark.stats.stats.median
