"""Throughput measurement: honest timing, FLOP counts, device peaks, memory, workloads, fast path.

The pieces are separate modules so each can be tested alone:

- ``timing``: warm up, synchronise, repeat, median and IQR (``measure``).
- ``flops``: FLOPs of one call, counted by ``torch.utils.flop_counter``.
- ``peak``: the matrix-product peak of a dtype on a device, measured in the same run.
- ``memory``: CUDA allocator peak or process peak RSS.
- ``pipelines``: the measured workloads (``WORKLOADS``) and ``run_throughput`` rows.
- ``fastpath``: channels_last + reduced-precision inference and its accuracy check.
"""
