"""The CPU fast path splits each batch over single-thread workers: same labels, threads restored, externals whole."""

from __future__ import annotations

import threading

import numpy as np
import torch
from torch import nn

from unetgan_core.device import cpu_threads
from unetgan_core.pipelines import UnetPipeline
from unetgan_core.throughput.fastpath import choose_fast_path, fast_path_description, fast_workers


class _Recorder(nn.Module):
    """Labels by intensity (known answers) that notes which thread ran each batch, its torch threads and grad mode."""

    def __init__(self) -> None:
        super().__init__()
        self.centres = nn.Parameter(torch.tensor([0.2, 0.6, 0.8]).view(1, 3, 1, 1), requires_grad=False)
        self.calls: list[tuple[str, int, bool, int]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((threading.current_thread().name, torch.get_num_threads(), torch.is_grad_enabled(), len(x)))
        return -((x - self.centres) ** 2)


def _images(n: int = 40, size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    images = np.random.default_rng(0).random((n, size, size), dtype=np.float32)
    return images, np.digitize(images, [0.4, 0.7]).astype(np.uint8)


def test_each_batch_is_split_over_single_thread_workers_without_grad():
    images, labels = _images()
    model = _Recorder()
    with cpu_threads(2):
        assert fast_workers("cpu") == 2
        pred = UnetPipeline(model).predict(images, batch_size=32, fast=True)
        assert torch.get_num_threads() == 2  # restored
        assert fast_path_description("cpu").endswith("on 2 single-thread workers")
    np.testing.assert_array_equal(pred, labels)
    # Two batches (32 + 8 images), each as two halves on two worker threads with one torch thread each.
    assert sorted(n for *_, n in model.calls) == [4, 4, 16, 16]
    assert {threads for _, threads, _, _ in model.calls} == {1}
    assert not any(grad for _, _, grad, _ in model.calls)
    assert {name.rsplit("_", 1)[0] for name, *_ in model.calls} == {"fastpath"}


def test_one_thread_runs_whole_batches_in_the_calling_thread():
    images, labels = _images()
    model = _Recorder()
    with cpu_threads(1):
        np.testing.assert_array_equal(UnetPipeline(model).predict(images, batch_size=32, fast=True), labels)
        assert fast_path_description("cpu") == choose_fast_path("cpu").description
    assert [n for *_, n in model.calls] == [32, 8]
    assert {name for name, *_ in model.calls} == {threading.current_thread().name}


def test_a_model_that_runs_its_own_threads_is_not_split():
    images, labels = _images()
    model = _Recorder()
    model.split_batches = False  # what an external SegmenterModule declares
    pipeline = UnetPipeline(model)
    with cpu_threads(2):
        np.testing.assert_array_equal(pipeline.predict(images, batch_size=32, fast=True), labels)
        # and the results say so: no workers in the description
        assert pipeline.fast_workers == 1
        assert pipeline.fast_path_description() == choose_fast_path("cpu").description
        assert UnetPipeline(_Recorder()).fast_path_description().endswith("on 2 single-thread workers")
    assert [n for *_, n in model.calls] == [32, 8]


def test_the_split_keeps_a_real_unet_s_labels():
    """An LV-Unet's fast labels split over two workers equal its fast labels in one thread, image by image."""
    from unetgan_core.models import create_model

    torch.manual_seed(0)
    pipeline = UnetPipeline(create_model("lv_unet", width=4))
    images = np.random.default_rng(1).random((6, 32, 32), dtype=np.float32)
    with cpu_threads(1):
        whole = pipeline.predict(images, batch_size=6, fast=True)
    with cpu_threads(2):
        split = pipeline.predict(images, batch_size=6, fast=True)
    assert (split == whole).mean() > 0.999
