"""Emulated precisions are skipped with one row that says why; rows are capped in time; a beaten peak gives no fraction."""

from __future__ import annotations

import pytest
import torch

from tests.test_throughput_rows import TINY, tiny_conv
from unetgan_core.registry import Registry
from unetgan_core.throughput import peak as peak_module
from unetgan_core.throughput import pipelines, precision
from unetgan_core.throughput.peak import measure_matmul_tflops
from unetgan_core.throughput.pipelines import ROW_KEYS, SKIPPED_PIPELINE, run_throughput
from unetgan_core.throughput.precision import MIN_SPEEDUP, decide_precision, native_support


@pytest.fixture
def registry():
    reg = Registry("throughput pipeline")
    reg.add("tiny", tiny_conv)
    reg.add("tiny2", tiny_conv)
    return reg


def fake_probe(ms: dict[str, float]):
    return lambda device, prec, repeats: ms[prec]


def test_fp32_and_cuda_fp16_need_no_probe(monkeypatch):
    monkeypatch.setattr(precision, "_probe_ms", lambda *a: pytest.fail("probed"))
    assert decide_precision("cpu", "fp32").measured
    assert native_support("cuda", "fp16") == "CUDA runs fp16 natively"


@pytest.mark.parametrize(
    "ms, measured",
    [
        ({"fp32": 2.0, "bf16": 48.0}, False),  # 24x slower: emulated, as on an AVX2-only CPU
        ({"fp32": 2.0, "bf16": 2.0}, False),  # no faster: not worth rows
        ({"fp32": 2.0, "bf16": 2.0 / MIN_SPEEDUP}, True),  # just measurably faster
        ({"fp32": 2.0, "bf16": 1.0}, True),
    ],
)
def test_cpu_bf16_without_native_support_is_decided_by_the_probe(monkeypatch, ms, measured):
    monkeypatch.setattr(precision, "native_support", lambda device, prec: None)
    monkeypatch.setattr(precision, "_probe_ms", fake_probe(ms))
    decision = decide_precision("cpu", "bf16")
    assert decision.measured is measured
    assert decision.probe_ms == {"fp32": 2.0, "bf16": pytest.approx(ms["bf16"], abs=1e-3)}
    if not measured:
        assert decision.reason.startswith("skipped: no native bf16 on this cpu")
        assert f"{ms['bf16']:.2f} ms in bf16 against 2.00 ms in fp32" in decision.reason


def test_native_support_skips_the_probe(monkeypatch):
    monkeypatch.setattr(precision, "native_support", lambda device, prec: "CPU has AMX")
    monkeypatch.setattr(precision, "_probe_ms", lambda *a: pytest.fail("probed"))
    decision = decide_precision("cpu", "bf16")
    assert decision.measured and decision.reason == "CPU has AMX"


def test_the_real_probe_runs_in_milliseconds():
    ms = precision._probe_ms(torch.device("cpu"), "fp32", 3)
    assert 0 < ms < 1000


def test_a_skipped_precision_is_one_row_with_the_reason(monkeypatch, registry):
    skipped = precision.PrecisionDecision("bf16", False, "skipped: emulated (test)")
    monkeypatch.setattr(pipelines, "decide_precision", lambda device, prec: skipped)
    rows = run_throughput(
        {**TINY, "pipelines": ["tiny", "tiny2"], "batch_sizes": [1, 2], "precisions": ["fp32", "bf16"]},
        "cpu",
        workloads=registry,
    )
    assert len(rows) == 1 + 4  # one skipped row for bf16, then the fp32 product only
    first = rows[0]
    assert tuple(first) == ROW_KEYS
    assert (first["pipeline"], first["precision"], first["error"]) == (SKIPPED_PIPELINE, "bf16", skipped.reason)
    assert first["images_per_s"] is None
    assert all(r["precision"] == "fp32" and r["error"] is None for r in rows[1:])


def test_emulated_precisions_measure_keeps_the_rows(monkeypatch, registry):
    monkeypatch.setattr(pipelines, "decide_precision", lambda *a: pytest.fail("decided"))
    rows = run_throughput(
        {**TINY, "pipelines": ["tiny"], "batch_sizes": [1], "precisions": ["bf16"], "emulated_precisions": "measure"},
        "cpu",
        workloads=registry,
    )
    assert [(r["precision"], r["error"]) for r in rows] == [("bf16", None)]


def test_rows_stop_at_the_time_cap(registry):
    def slow(spec):
        import time

        return pipelines.Workload(lambda: time.sleep(0.05), spec.batch)

    registry.add("slow", slow)
    (row,) = run_throughput(
        {**TINY, "pipelines": ["slow"], "batch_sizes": [1], "repeats": 50, "warmup": 0, "max_row_s": 0.12},
        "cpu",
        workloads=registry,
    )
    assert 1 <= row["repeats_done"] <= 4  # 50 asked for; ~0.12 s / 0.05 s allowed
    assert row["error"] is None and row["images_per_s"] > 0


def test_a_row_faster_than_the_peak_has_no_fraction(monkeypatch, registry):
    class TinyPeak:
        def __init__(self, *a, **k):
            pass

        def tflops(self, dtype, device):
            return 1e-12  # far below any real rate: the measured peak is not a peak

    monkeypatch.setattr(pipelines, "PeakCache", TinyPeak)
    (row,) = run_throughput({**TINY, "pipelines": ["tiny"], "batch_sizes": [1]}, "cpu", workloads=registry)
    assert row["achieved_tflops"] > row["peak_tflops"]
    assert row["fraction_of_peak"] is None


def test_the_peak_search_doubles_until_the_plateau(monkeypatch):
    rates = {256: 0.10, 512: 0.20, 1024: 0.205, 2048: 0.5}  # plateau at 1024: 2048 is never tried
    tried = []

    def fake_rate(n, dtype, device, warmup, repeats):
        tried.append(n)
        return rates[n], 0.01

    monkeypatch.setattr(peak_module, "_rate_tflops", fake_rate)
    assert measure_matmul_tflops(torch.float32, "cpu") == 0.205
    assert tried == [256, 512, 1024]


def test_the_peak_search_stops_at_a_slow_product(monkeypatch):
    tried = []

    def fake_rate(n, dtype, device, warmup, repeats):
        tried.append(n)
        return n / 1000, 1.0 if n >= 512 else 0.01  # still rising, but a product takes 1 s

    monkeypatch.setattr(peak_module, "_rate_tflops", fake_rate)
    assert measure_matmul_tflops(torch.float32, "cpu") == 0.512
    assert tried == [256, 512]
