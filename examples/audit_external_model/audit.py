"""Audit the exported models of ``train_monai.py`` the way a suite will: load every ``[models.NAME]`` table of
``models.toml`` through ``unetgan_core.external``, check its contract on a probe batch, and measure Dice on
phantom patients the model never saw, in the source style and the two other vendor styles.

Prints one block per model (adaptation, files by SHA-256, Dice per vendor, agreement with the first
model) and writes ``audit.json`` beside ``models.toml`` with the same numbers and each model's provenance.
Run ``python audit.py --models runs/monai`` (``--toy`` for a few images).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from unetgan_bench.bench.schema import load_table
from unetgan_core.data.phantom.source import PhantomSource
from unetgan_core.errors import UserError
from unetgan_core.external import ExternalModelSpec, load_external
from unetgan_core.metrics import dice_scores

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

VENDORS = ("philips", "siemens", "ge")
SIZE_PX = 64
UNSEEN_SEED = 1000  # phantom seed of the test patients; training used seed 0


def audit(folder: Path, toy: bool) -> dict:
    """Load every model of ``folder/models.toml`` and score it on unseen phantom patients of each vendor."""
    table_file = folder / "models.toml"
    tables = tomllib.loads(table_file.read_text())["models"]
    source = PhantomSource(
        size_px=SIZE_PX, subjects_per_vendor=1 if toy else 6, slices_per_subject=2 if toy else 6, seed=UNSEEN_SEED
    )
    data = {v: source.load(v, source.subjects(v)) for v in VENDORS}
    report, first_predictions = {}, None
    for name, table in tables.items():
        spec = load_table(ExternalModelSpec, table, f"{table_file}: [models.{name}]")
        model = load_external(spec, folder, name=name, probe_size=SIZE_PX)
        predictions = {v: model.predict(s.images) for v, s in data.items()}
        first_predictions = first_predictions or predictions
        report[name] = {
            "adaptation": model.adaptation(SIZE_PX),
            "provenance": model.provenance(),
            "feature_layers": "ok" if model.feature_refusal is None else model.feature_refusal,
            "dice": {
                v: {k: float(np.nanmean(x)) for k, x in dice_scores(predictions[v], data[v].labels).items()}
                for v in VENDORS
            },
            "pixels_equal_to_first": float(
                np.mean(np.concatenate([(predictions[v] == first_predictions[v]).ravel() for v in VENDORS]))
            ),
        }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, required=True, help="the --out folder of train_monai.py")
    parser.add_argument("--toy", action="store_true", help="a few images only (CI)")
    args = parser.parse_args(argv)
    try:
        report = audit(args.models, args.toy)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, r in report.items():
        files = ", ".join(
            f"{f['file']} ({f['size_bytes']} B, sha256 {f['sha256'][:12]})" for f in r["provenance"]["files"]
        )
        dice = "; ".join(
            f"{v} blood pool {d['dice_blood_pool']:.3f} myo {d['dice_myo']:.3f}" for v, d in r["dice"].items()
        )
        print(f"{name} [{r['provenance']['format']}]\n  {r['adaptation']}\n  files: {files}\n  Dice: {dice}")
        print(f"  pixels equal to the first model: {r['pixels_equal_to_first']:.5f}; features: {r['feature_layers']}")
    (args.models / "audit.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
