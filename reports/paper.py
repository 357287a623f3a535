"""The paper's reported numbers (Yan et al., MICCAI 2019, Table 1) and the cells they compare with.

A run's cell is shown beside the paper's value only where it measures what the paper measured:
Dice, the same vendor, and that vendor in the paper's role (a Philips-trained Unet tested on
Philips, Siemens and GE).
"""

from __future__ import annotations

from unetgan_bench.reports import format as fmt

# Table 1: mean +/- std of Dice over test images (Philips source).
PAPER_TABLE1 = {
    ("philips", "clean"): (0.892, 0.032),
    ("philips", "noisy"): (0.877, 0.034),
    ("siemens", "clean"): (0.474, 0.071),
    ("siemens", "noisy"): (0.502, 0.064),
    ("siemens", "unetgan"): (0.805, 0.041),
    ("ge", "clean"): (0.727, 0.042),
    ("ge", "noisy"): (0.813, 0.040),
    ("ge", "unetgan"): (0.867, 0.035),
}
PAPER_ROLES = {"philips": "source", "siemens": "target", "ge": "target"}
PAPER_SOURCE = "philips"


def paper_value(vendor: str, role: str, scenario: str, metric: str, style: str) -> str:
    """The paper's value for a cell as printed text, or ``""`` where the paper has none to compare.

    A GE-trained Unet tested on GE (e.g. the Sunnybrook suite) is not the paper's GE column,
    whose Unet was trained on Philips, so the vendor must play the paper's role too.

    Args:
        vendor: the cell's vendor (any case).
        role: ``"source"`` or ``"target"`` in this run.
        scenario: the scenario name.
        metric: the metric; only ``"dice_mean"`` has paper values.
        style: ``"text"``, ``"html"`` or ``"latex"`` (see :func:`reports.format.format_mean_std`).
    """
    comparable = metric == "dice_mean" and PAPER_ROLES.get(vendor.lower()) == role
    value = PAPER_TABLE1.get((vendor.lower(), scenario)) if comparable else None
    return fmt.format_mean_std(*value, style=style) if value else ""


def paper_recovery(vendor: str) -> float | None:
    """The share of the drop the paper's Unet-GAN recovered on ``vendor`` (Siemens 0.79, GE 0.85), from its Table 1."""
    source, clean, unetgan = (
        PAPER_TABLE1.get(key)
        for key in ((PAPER_SOURCE, "clean"), (vendor.lower(), "clean"), (vendor.lower(), "unetgan"))
    )
    if not (source and clean and unetgan) or vendor.lower() == PAPER_SOURCE:
        return None
    return (unetgan[0] - clean[0]) / (source[0] - clean[0])
