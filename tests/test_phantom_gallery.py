"""The gallery figure: a PNG of every style, and the command-line entry."""

import matplotlib.image

from unetgan_core.data.gallery import main, render_gallery


def test_gallery_writes_a_png_with_one_column_per_style(tmp_path):
    out = render_gallery(tmp_path / "g.png", ["philips", "siemens"], n_anatomies=1, size_px=64)
    pixels = matplotlib.image.imread(out)
    assert pixels.ndim == 3 and pixels.shape[1] > pixels.shape[0] / 3  # 3 rows x 2 columns


def test_gallery_cli_reports_unknown_style_with_exit_code_2(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "g.png"), "--styles", "toshiba", "--size", "64"]) == 2
    assert "unknown vendor style 'toshiba'" in capsys.readouterr().out
