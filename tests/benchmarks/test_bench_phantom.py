"""Phantom generation speed: the full chain at 192 x 192, and a cached load.

Run: python -m pytest tests/benchmarks/test_bench_phantom.py --benchmark-enable -q
"""

import pytest

from unetgan_core.data.phantom import render_subjects
from unetgan_core.data.phantom.styles import STYLES
from unetgan_core.data.sources import create_source

N_SUBJECTS, N_SLICES = 4, 8  # 4 x 8 x 2 phases = 64 images


@pytest.mark.parametrize("style", ["philips", "siemens"])
def test_render_64_images_192px(benchmark, style):
    def run():
        return render_subjects(
            [f"s{i}" for i in range(N_SUBJECTS)],
            list(range(N_SUBJECTS)),
            list(range(N_SUBJECTS)),
            STYLES.get(style),
            size_px=192,
            slices=N_SLICES,
        )

    out = benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    assert len(out) == 64
    if benchmark.stats:
        benchmark.extra_info["images_per_s"] = 64 / benchmark.stats.stats.median


def test_cached_load_64_images_192px(benchmark, tmp_path):
    src = create_source(
        "phantom", size_px=192, subjects_per_vendor=N_SUBJECTS, slices_per_subject=N_SLICES, cache_dir=tmp_path
    )
    src.load("ge", src.subjects("ge"))  # generate once

    out = benchmark(lambda: src.load("ge", src.subjects("ge")))
    assert len(out) == 64
    if benchmark.stats:
        benchmark.extra_info["images_per_s"] = 64 / benchmark.stats.stats.median
