"""A picture of the phantom: the same hearts rendered in every vendor style, with label outlines.

Run ``python -m unetgan_core.data.gallery --out gallery.png``. The styles are synthetic and
only inspired by the vendors of Yan et al. (MICCAI 2019); the title says so.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

from unetgan_core.data.phantom.render import render_anatomy  # noqa: E402
from unetgan_core.data.phantom.styles import STYLES  # noqa: E402
from unetgan_core.data.sliceset import BLOOD_POOL, MYOCARDIUM, RIGHT_VENTRICLE  # noqa: E402
from unetgan_core.errors import UserError  # noqa: E402
from unetgan_core.hashing import derive_seed  # noqa: E402

_OUTLINES = ((BLOOD_POOL, "#ff3b30"), (MYOCARDIUM, "#34c759"), (RIGHT_VENTRICLE, "#0a84ff"))
_VIEWS = ((3, "ED"), (3, "ES"), (5, "ED"))  # (slice of 6, apex = 0; phase) shown per anatomy


def render_gallery(
    path: str | Path, styles: Sequence[str] | None = None, n_anatomies: int = 3, size_px: int = 192, seed: int = 0
) -> Path:
    """Write a PNG grid: rows are (anatomy, slice, phase), columns are styles.

    Args:
        path: output PNG file.
        styles: style names or ``VendorStyle`` objects (default: every registered style).
        n_anatomies: how many different hearts.
        size_px: image side in pixels (field of view stays 288 mm).
        seed: base seed of the anatomies and acquisitions.

    Returns:
        The path written.
    """
    styles = list(STYLES.names() if styles is None else styles)
    if not styles or n_anatomies < 1:
        raise UserError(f"gallery needs at least one style and one anatomy, got {styles!r} and {n_anatomies}")
    rows = [(a, k, ph) for a in range(n_anatomies) for k, ph in _VIEWS]
    fig, axes = plt.subplots(len(rows), len(styles), figsize=(2.4 * len(styles), 2.4 * len(rows) + 0.6), squeeze=False)
    for col, name in enumerate(styles):
        for a in range(n_anatomies):
            rendered = render_anatomy(
                derive_seed(seed, "gallery", a),
                name,
                size_px,
                slices=6,
                image_seed=derive_seed(seed, "image", a),
                include_rv=True,
            )
            for view, (k, phase) in enumerate(_VIEWS):
                i = int(np.flatnonzero((rendered.slice_index == k) & (rendered.phase == phase))[0])
                ax = axes[a * len(_VIEWS) + view, col]
                ax.imshow(rendered.images[i], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                for value, colour in _OUTLINES:
                    mask = rendered.labels[i] == value
                    if mask.any():
                        ax.contour(mask.astype(float), levels=[0.5], colors=colour, linewidths=0.6)
                ax.set_xticks([])
                ax.set_yticks([])
                if a == 0 and view == 0:
                    ax.set_title(getattr(name, "name", name))
                if col == 0:
                    ax.set_ylabel(f"heart {a}, slice {k}, {phase}", fontsize=7)
    fig.suptitle(
        "Synthetic bSSFP phantom: styles inspired by the paper's vendors, not measured scanner properties\n"
        "outlines: red LV blood pool, green LV myocardium, blue RV",
        fontsize=9,
    )
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gallery.png", help="output PNG path")
    parser.add_argument("--styles", nargs="*", default=None, help="style names (default: all)")
    parser.add_argument("--n-anatomies", type=int, default=3)
    parser.add_argument("--size", type=int, default=192, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        out = render_gallery(args.out, args.styles, args.n_anatomies, args.size, args.seed)
    except UserError as exc:
        print(f"error: {exc}")
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
