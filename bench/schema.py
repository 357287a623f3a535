"""The suite loader's schema helpers, for bench sections: ``field``, ``load_table``, ``describe``.

They live in ``unetgan_core.schema`` so the training and throughput configs in ``unetgan_core``
parse through the same loader (``unetgan_core`` does not import ``bench``); this module keeps
the names where the suite's own sections import them.
"""

from __future__ import annotations

from unetgan_core.schema import check_fields, describe, field, load_table

__all__ = ["check_fields", "describe", "field", "load_table"]
