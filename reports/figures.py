"""Figures for the report, drawn with matplotlib's Agg/SVG back ends and embedded inline.

Charts become inline SVG (text stays text, so it is sharp and searchable); image panels
become PNG data URIs. Nothing refers to a file or a network address, so ``report.html`` opens
offline and can be mailed as one file. Figures are built on ``matplotlib.figure.Figure``
directly, never through pyplot's global state, and are deterministic for the same inputs.
"""

from __future__ import annotations

import base64
import io
import math
import re
import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from unetgan_core.errors import DataError  # noqa: E402

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
# Label overlays: blood pool, myocardium, RV (RV is shown in pictures only, never scored).
LABEL_COLOURS = {1: (0.90, 0.20, 0.20), 2: (0.20, 0.80, 0.30), 3: (0.25, 0.45, 0.95)}
OVERLAY_ALPHA = 0.45
TRANSLATION_ARRAYS = ("original", "translated", "pred_before", "pred_after", "label")
FGSM_ARRAYS = ("image", "perturbation", "adversarial", "pred_before", "pred_after", "label")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Characters a line of a throughput setting label holds: about half the chart's 6 inches.
SETTING_LABEL_CHARS = 40

_RC = {
    "svg.fonttype": "none",  # keep text as <text>: smaller files, selectable labels
    "svg.hashsalt": "unetgan-bench",  # fixed ids: the same data give the same SVG bytes
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


def _plain(text: Any) -> str:
    # A "$" in a vendor name would switch matplotlib into math mode; show it literally.
    return str(text).replace("$", r"\$")


def figure_to_svg(fig: Figure) -> str:
    """An inline ``<svg>`` element for HTML, without XML prolog, DOCTYPE, metadata or namespaces.

    Inline SVG in HTML needs none of those; removing them also keeps every URL-like string
    (namespace names, the DTD address) out of the report.

    Args:
        fig: the figure (sizes in inches, as matplotlib uses).
    """
    buffer = io.StringIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", svg)
    svg = re.sub(r'\s+version="1\.1"', "", svg, count=1)
    # Let CSS size the chart to the column width while keeping its aspect ratio.
    svg = re.sub(r'<svg([^>]*?)\swidth="[^"]*"\s+height="[^"]*"', r'<svg\1 class="chart"', svg, count=1)
    return svg


def figure_to_png_uri(fig: Figure, dpi: int = 100, tight: bool = True) -> str:
    """A ``data:image/png;base64,...`` URI of a figure.

    Args:
        fig: the figure.
        dpi: dots per inch of the raster.
        tight: crop to the drawn content (costs one extra draw; not needed for a figure laid out by hand).
    """
    buffer = io.BytesIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight" if tight else None, metadata={"Software": None})
    return png_bytes_to_uri(buffer.getvalue())


def png_bytes_to_uri(data: bytes) -> str:
    """A data URI for PNG bytes.

    Args:
        data: the PNG file's bytes.

    Raises:
        DataError: the bytes are not a PNG file.
    """
    if not data.startswith(PNG_SIGNATURE):
        raise DataError("not a PNG file (bad signature)")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def gallery_uri(path: Path) -> str | None:
    """The style gallery PNG as a data URI; None when the run wrote none.

    Args:
        path: ``figures/gallery.png`` of the run.

    Raises:
        DataError: the file exists but is not a PNG.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return png_bytes_to_uri(path.read_bytes())
    except DataError:
        raise DataError(f"{path}: not a PNG file") from None


def _new_figure(width_in: float, height_in: float) -> Figure:
    with matplotlib.rc_context(_RC):
        return Figure(figsize=(width_in, height_in), layout="constrained")


def dice_bar_chart(stats: pd.DataFrame, labels: dict[str, str], ylabel: str = "Dice") -> str | None:
    """Grouped bars: mean per vendor (groups) and scenario (colours), 95% bootstrap CI as error bars.

    Args:
        stats: rows of :func:`reports.cellstats.segmentation_stats` (vendor, scenario, mean, ci95_low, ci95_high).
        labels: scenario name -> legend label.
        ylabel: the y-axis label (Dice is unitless, in [0, 1]).

    Returns:
        Inline SVG, or None when there is nothing to draw.
    """
    if stats.empty:
        return None
    vendors = list(dict.fromkeys(stats["vendor"]))
    scenarios = list(labels)
    width = 0.8 / max(len(scenarios), 1)
    with matplotlib.rc_context(_RC):
        fig = _new_figure(max(6.0, 1.3 * len(vendors) + 2), 3.4)
        ax = fig.add_subplot()
        for j, scenario in enumerate(scenarios):
            sub = stats[stats["scenario"] == scenario].set_index("vendor")
            xs, means, err = [], [], [[], []]
            for i, vendor in enumerate(vendors):
                if vendor not in sub.index:
                    continue
                row = sub.loc[vendor]
                xs.append(i - 0.4 + width * (j + 0.5))
                means.append(row["mean"])
                low, high = row["ci95_low"], row["ci95_high"]
                has_ci = not (math.isnan(low) or math.isnan(high))
                err[0].append(row["mean"] - low if has_ci else 0.0)
                err[1].append(high - row["mean"] if has_ci else 0.0)
            if xs:
                ax.bar(
                    xs,
                    means,
                    width * 0.92,
                    yerr=err,
                    capsize=2,
                    label=_plain(labels[scenario]),
                    color=PALETTE[j % len(PALETTE)],
                )
        ax.set_xticks(range(len(vendors)), [_plain(v) for v in vendors])
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 1.0 if stats["mean"].max() <= 1 else None)
        ax.grid(axis="x", visible=False)
        # At most four legend entries a row: a wider legend squeezes the axes to nothing.
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=min(len(scenarios), 4), frameon=False)
        return figure_to_svg(fig)


def dose_response_chart(
    table: pd.DataFrame, setting: str, clean: dict[str, float], paper: float | None = None
) -> str | None:
    """Dice per target vendor against a swept setting's value: a line per vendor, its 95% CI as a band.

    Args:
        table: rows of :func:`reports.dose_response.dose_response_table` for one setting.
        setting: the setting's name, the x-axis label.
        clean: vendor -> the clean Unet's Dice there, drawn as a dotted line of the vendor's colour.
        paper: the paper's value of the setting, marked by a dashed vertical line (None: not marked).

    Returns:
        Inline SVG, or None when there is nothing to draw. The x-axis is linear up to the smallest positive
        value and logarithmic beyond (values such as 0, 0.15, 1.5, 15 stay apart).
    """
    if table.empty:
        return None
    positive = table.loc[table["value"] > 0, "value"]
    with matplotlib.rc_context(_RC):
        fig = _new_figure(6.0, 3.4)
        ax = fig.add_subplot()
        for j, (vendor, rows) in enumerate(table.groupby("vendor", sort=False)):
            colour = PALETTE[j % len(PALETTE)]
            rows = rows.sort_values("value")
            ax.plot(rows["value"], rows["dice"], marker="o", color=colour, label=_plain(vendor))
            ax.fill_between(rows["value"], rows["ci95_low"], rows["ci95_high"], color=colour, alpha=0.2, linewidth=0)
            if vendor in clean:
                ax.axhline(
                    clean[vendor], color=colour, linestyle=":", linewidth=1, label=_plain(f"clean Unet, {vendor}")
                )
        if paper is not None:
            ax.axvline(paper, color="black", linestyle="--", linewidth=1, label="paper's value")
        if len(positive) and ((table["value"] <= 0).any() or positive.max() / positive.min() > 20):
            ax.set_xscale("symlog", linthresh=float(positive.min()))
        ax.set_xlabel(_plain(setting))
        ax.set_ylabel("Dice (target vendor)")
        ax.set_ylim(0, 1.0)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, frameon=False)
        return figure_to_svg(fig)


def fgsm_chart(curves: pd.DataFrame) -> str | None:
    """Dice against perturbation size, one line per (scenario, vendor) and a line style per attack.

    Args:
        curves: the output of :func:`reports.fgsm_tables.fgsm_curves` (eps in normalised [0, 1] units).

    Returns:
        Inline SVG, or None when no attack was measured.
    """
    if curves.empty:
        return None
    styles = ("-", "--", ":", "-.")
    attacks = list(dict.fromkeys(curves["attack"]))
    series = list(dict.fromkeys(zip(curves["scenario"], curves["vendor"], strict=True)))
    with matplotlib.rc_context(_RC):
        fig = _new_figure(6.0, 3.2)
        ax = fig.add_subplot()
        for i, (scenario, vendor) in enumerate(series):
            for k, attack in enumerate(attacks):
                sub = curves[
                    (curves["scenario"] == scenario) & (curves["vendor"] == vendor) & (curves["attack"] == attack)
                ]
                if sub.empty:
                    continue
                ax.plot(
                    sub["eps"],
                    sub["dice_mean"],
                    styles[k % len(styles)],
                    marker="o",
                    markersize=3,
                    color=PALETTE[i % len(PALETTE)],
                    label=_plain(f"{scenario} / {vendor} / {attack}"),
                )
        ax.set_xlabel("eps (normalised [0, 1] intensity)")
        ax.set_ylabel("Dice")
        ax.set_ylim(0, 1)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False, fontsize=8)
        return figure_to_svg(fig)


def throughput_chart(table: pd.DataFrame) -> str | None:
    """Horizontal bars of images per second per throughput setting (failed settings left out).

    Args:
        table: the output of :func:`reports.throughput_tables.throughput_table`.

    Returns:
        Inline SVG, or None when no setting was measured successfully.
    """
    if table.empty:
        return None
    ok = table[(table["error"] == "") & table["images_per_s"].notna()]
    if ok.empty:
        return None
    # A setting label wider than the figure would squeeze the axes to nothing (a run with one
    # setting names all of them): wrap labels into lines and give each bar room for its lines.
    labels = [textwrap.fill(_plain(s), SETTING_LABEL_CHARS, break_on_hyphens=False) for s in ok["setting"]]
    lines = max(label.count("\n") + 1 for label in labels)
    with matplotlib.rc_context(_RC):
        fig = _new_figure(6.0, 0.35 * lines * len(ok) + 1.0)
        ax = fig.add_subplot()
        ys = np.arange(len(ok))
        ax.barh(ys, ok["images_per_s"], color=PALETTE[0])
        ax.set_yticks(ys, labels)
        ax.invert_yaxis()
        ax.set_xlabel("images per second")
        ax.grid(axis="y", visible=False)
        return figure_to_svg(fig)


def overlay(image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """An RGB picture of a grey image with label colours blended on top.

    Args:
        image: ``[H, W]`` intensities in [0, 1] (values outside are clipped).
        mask: ``[H, W]`` labels (1 blood pool red, 2 myocardium green, 3 RV blue); None for the image alone.

    Returns:
        float ``[H, W, 3]`` in [0, 1].
    """
    grey = np.clip(np.asarray(image, float), 0, 1)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    if mask is None:
        return rgb
    mask = np.asarray(mask)
    if mask.shape != grey.shape:
        raise DataError(f"mask shape {mask.shape} does not match image shape {grey.shape}")
    for value, colour in LABEL_COLOURS.items():
        where = mask == value
        rgb[where] = (1 - OVERLAY_ALPHA) * rgb[where] + OVERLAY_ALPHA * np.asarray(colour)
    return rgb


def load_panel(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Arrays of one figure panel file, each as ``[K, H, W]`` (a single image gets K = 1).

    Args:
        path: the ``.npz`` file written by the runner.
        names: arrays that must be present.

    Raises:
        DataError: the file cannot be read, lacks an array, or the arrays disagree in shape.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read figure data ({exc})") from None
    missing = [n for n in names if n not in arrays]
    if missing:
        raise DataError(f"{path}: lacks array {missing[0]!r}; expected {', '.join(names)}")
    shape = None
    for name in names:
        array = arrays[name]
        if array.ndim == 2:
            array = array[None]
        if array.ndim != 3:
            raise DataError(f"{path}: array {name!r} has shape {array.shape}; expected [K, H, W]")
        if shape is not None and array.shape != shape:
            raise DataError(f"{path}: array {name!r} has shape {array.shape}, others {shape}")
        shape = array.shape
        arrays[name] = array
    return arrays


def _rgb(picture: np.ndarray, cmap: str | None = None, vmin: float = 0.0, vmax: float = 1.0) -> np.ndarray:
    """A picture as float RGB ``[H, W, 3]``: RGB input as it is, a grey one through ``cmap`` (grey by default).

    Args:
        picture: ``[H, W]`` values (mapped from [vmin, vmax]) or ``[H, W, 3]`` RGB in [0, 1].
        cmap: matplotlib colour map name for a 2D picture.
        vmin: value shown as the map's first colour.
        vmax: value shown as the map's last colour.
    """
    picture = np.asarray(picture, float)
    if picture.ndim == 3:
        return np.clip(picture[..., :3], 0, 1)
    scaled = np.clip((picture - vmin) / (vmax - vmin), 0, 1)
    return matplotlib.colormaps[cmap or "gray"](scaled)[..., :3]


def _image_grid(
    tiles: list[list[np.ndarray]],
    row_labels: list[str] | None = None,
    col_labels: list[str] | None = None,
    tile_in: float = 1.5,
    dpi: int = 110,
) -> str:
    """A grid of equally sized RGB pictures with row and/or column labels, as a PNG data URI.

    The tiles are pasted into one array and drawn with a single ``imshow`` on hand-placed axes:
    one axes instead of one per tile, and no layout engine or tight bounding box (each would
    cost a full extra draw), makes a panel about three times faster to render.

    Args:
        tiles: rows of ``[H, W, 3]`` pictures in [0, 1], all of the same shape.
        row_labels: one label per row, written vertically left of it.
        col_labels: one title per column, written above it.
        tile_in: shown width of one tile in inches.
        dpi: dots per inch of the raster.

    Raises:
        DataError: there is no picture to show.
    """
    if not tiles or not tiles[0]:
        raise DataError("the figure file holds no image")
    n_rows, n_cols = len(tiles), len(tiles[0])
    h, w = tiles[0][0].shape[:2]
    gap = max(1, round(0.04 * w))  # white lines between tiles, in image pixels
    mosaic = np.ones((n_rows * (h + gap) - gap, n_cols * (w + gap) - gap, 3))
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            mosaic[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = tile
    scale = tile_in / w  # inches per image pixel
    left = 0.25 if row_labels else 0.02  # inches kept for the labels
    top = 0.25 if col_labels else 0.02
    width_in, height_in = mosaic.shape[1] * scale, mosaic.shape[0] * scale
    fig_w, fig_h = width_in + left + 0.02, height_in + top + 0.02
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(fig_w, fig_h), facecolor="white")
        ax = fig.add_axes((left / fig_w, 0.02 / fig_h, width_in / fig_w, height_in / fig_h))
        ax.imshow(mosaic, interpolation="nearest", aspect="equal")
        ax.set_axis_off()
        for r, label in enumerate(row_labels or []):
            y = r * (h + gap) + h / 2 - 0.5
            ax.text(-gap - 0.5, y, _plain(label), rotation=90, ha="right", va="center", fontsize=8)
        for c, label in enumerate(col_labels or []):
            x = c * (w + gap) + w / 2 - 0.5
            ax.text(x, -gap - 0.5, _plain(label), ha="center", va="bottom", fontsize=8)
        return figure_to_png_uri(fig, dpi=dpi, tight=False)


def translation_panel(path: Path, max_images: int = 6) -> str:
    """The paper's Fig. 4/5 for one target: original, translated, segmentation before and after
    translation (both overlaid on the original image), and the ground truth.

    Args:
        path: ``figures/translation_<vendor>_seed<k>.npz``.
        max_images: columns shown at most.

    Returns:
        A PNG data URI.
    """
    a = load_panel(path, TRANSLATION_ARRAYS)
    k = min(len(a["original"]), max_images)
    rows = [
        ("original", [_rgb(a["original"][i]) for i in range(k)]),
        ("translated", [_rgb(a["translated"][i]) for i in range(k)]),
        ("before", [overlay(a["original"][i], a["pred_before"][i]) for i in range(k)]),
        ("after", [overlay(a["original"][i], a["pred_after"][i]) for i in range(k)]),
        ("ground truth", [overlay(a["original"][i], a["label"][i]) for i in range(k)]),
    ]
    return _image_grid([pictures for _, pictures in rows], row_labels=[label for label, _ in rows])


def fgsm_panel(path: Path, max_images: int = 4) -> tuple[str, float | None]:
    """The paper's Fig. 1 for one attacked pipeline and vendor: image with its segmentation,
    the perturbation, the adversarial image with its segmentation, and the ground truth.

    Args:
        path: ``figures/fgsm_<scenario>_<vendor>.npz`` (with scalar ``eps`` in [0, 1] units).
        max_images: rows shown at most.

    Returns:
        (PNG data URI, eps or None when the file does not record it).
    """
    a = load_panel(path, FGSM_ARRAYS)
    # load_panel keeps the file's other arrays too, so eps needs no second read of the file.
    eps = float(a["eps"].reshape(())) if "eps" in a and a["eps"].size == 1 else None
    k = min(len(a["image"]), max_images)
    columns = [
        ("image + prediction", [overlay(a["image"][i], a["pred_before"][i]) for i in range(k)]),
        # The perturbation is stored amplified into [0, 1] with 0.5 meaning "unchanged".
        ("perturbation (amplified)", [_rgb(a["perturbation"][i], "RdBu_r") for i in range(k)]),
        ("adversarial + prediction", [overlay(a["adversarial"][i], a["pred_after"][i]) for i in range(k)]),
        ("ground truth", [overlay(a["image"][i], a["label"][i]) for i in range(k)]),
    ]
    # The paper lays an example out as a row: one row per image, one column per picture.
    tiles = [[pictures[r] for _, pictures in columns] for r in range(k)]
    return _image_grid(tiles, col_labels=[title for title, _ in columns], tile_in=1.6), eps


def corruption_heatmaps(dice: pd.DataFrame, labels: dict[str, str]) -> str | None:
    """A severity-by-corruption heat map of mean Dice per pipeline (rows) and vendor (columns).

    Args:
        dice: :func:`reports.corruption_tables.corruption_dice` (severity 0 is the uncorrupted image).
        labels: scenario name -> row title, in the order to draw.

    Returns:
        Inline SVG (each cell printed with its Dice), or None when no corruption was measured.
    """
    if dice.empty:
        return None
    scenarios = [s for s in labels if (dice["scenario"] == s).any()]
    vendors = list(dict.fromkeys(dice["vendor"]))
    corruptions = sorted(dict.fromkeys(dice["corruption"]))
    severities = sorted(int(s) for s in dict.fromkeys(dice["severity"]))
    cell_w, cell_h = 0.34 * len(severities) + 1.2, 0.24 * len(corruptions) + 0.7
    with matplotlib.rc_context({**_RC, "axes.grid": False}):
        fig = _new_figure(cell_w * len(vendors) + 0.8, cell_h * len(scenarios) + 0.4)
        axes = fig.subplots(len(scenarios), len(vendors), squeeze=False)
        image = None
        for r, scenario in enumerate(scenarios):
            named = False  # corruption names go left of a row's first measured grid
            for c, vendor in enumerate(vendors):
                ax = axes[r][c]
                sub = dice[(dice["scenario"] == scenario) & (dice["vendor"] == vendor)]
                if sub.empty:  # e.g. a translator on the source vendor
                    ax.set_axis_off()
                    ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
                    continue
                grid = sub.pivot(index="corruption", columns="severity", values="dice_mean").reindex(
                    index=corruptions, columns=severities
                )
                values = grid.to_numpy(dtype=float)
                image = ax.imshow(values, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
                for (i, j), value in np.ndenumerate(values):
                    if np.isfinite(value):
                        colour = "black" if value > 0.6 else "white"
                        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6, color=colour)
                ax.set_xticks(range(len(severities)), [str(s) for s in severities])
                ax.set_yticks(range(len(corruptions)), [] if named else [_plain(n) for n in corruptions])
                named = True
                ax.tick_params(length=0)
                ax.set_title(_plain(f"{labels[scenario]} / {vendor}"), fontsize=8)
                if r == len(scenarios) - 1:
                    ax.set_xlabel("severity (0 = uncorrupted)")
        fig.colorbar(image, ax=axes, shrink=0.6, label="Dice")
        return figure_to_svg(fig)


def corruption_panel(paths: list[tuple[str, Path]]) -> str:
    """Example images of one pipeline on one vendor: a row per corruption, the same image at the
    severities stored (0, 1, 3, 5) with the pipeline's prediction overlaid, and the ground truth.

    Args:
        paths: (corruption, ``figures/corruption_<scenario>_<vendor>_<corruption>.npz``) pairs, in row order.

    Returns:
        A PNG data URI.

    Raises:
        DataError: a file cannot be read or lacks an array.
    """
    tiles, names, severities = [], [], None
    for corruption, path in paths:
        a = load_panel(path, ("images", "predictions"))
        if "label" not in a or "severities" not in a:
            raise DataError(f"{path}: lacks array 'label' or 'severities'")
        row = [overlay(img, pred) for img, pred in zip(a["images"], a["predictions"], strict=True)]
        tiles.append([*row, overlay(a["images"][0], a["label"])])
        names.append(corruption)
        severities = [int(s) for s in np.ravel(a["severities"])]
    if len({len(row) for row in tiles}) > 1:
        raise DataError("corruption panel files hold different numbers of severities")
    titles = ["clean" if s == 0 else f"severity {s}" for s in severities or []]
    return _image_grid(tiles, row_labels=names, col_labels=[*titles, "ground truth"], tile_in=1.1)
