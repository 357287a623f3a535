"""report.html: self-contained, escaped, honest about synthetic data and oracle selection."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from markupsafe import escape

from unetgan_bench.reports.render import NOT_MEASURED, SYNTHETIC_NOTICE, render_report

FIXTURE = Path(__file__).parent / "fixtures" / "run_small"
EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def fixture_html(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("render") / "run_small"
    shutil.copytree(FIXTURE, run_dir)
    path = render_report(run_dir)
    return run_dir, path.read_text(encoding="utf-8")


def _write_rows(run_dir: Path, rows: list[dict]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "results.jsonl", "a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps({"schema_version": 1, **row}) + "\n")


def _segmentation_row(vendor: str, scenario: str, dice: float, selection: str = "val", role: str = "target") -> dict:
    return {
        "kind": "segmentation",
        "scenario": scenario,
        "vendor": vendor,
        "role": role,
        "seed": 0,
        "selection": selection,
        "metrics": {"dice_mean": dice, "n_images": 4},
    }


def test_report_is_written_with_every_section(fixture_html):
    run_dir, html = fixture_html
    assert (run_dir / "report.html").is_file() and (run_dir / "tables" / "table1.csv").is_file()
    for anchor in (
        "run",
        "table1",
        "recovery",
        "per-class",
        "hd95",
        "translation",
        "gallery",
        "fgsm",
        "corruptions",
        "throughput",
        "config",
    ):
        assert f'id="{anchor}"' in html and f'href="#{anchor}"' in html
    # The fixture measures everything but natural corruptions (tests/test_corruption_suite.py renders those).
    before, corruptions = html.split('<section id="corruptions">')
    assert NOT_MEASURED not in before + corruptions.split("</section>", 1)[1]
    assert escape(SYNTHETIC_NOTICE) in html
    assert "0123456789abcdef0123456789abcdef01234567 (dirty" in html
    assert "0.806 \u00b1 0.044" in html and "paper: 0.805 \u00b1 0.041" in html
    assert html.count("<svg") == 3  # Dice bars, attack curves, throughput bars
    assert html.count('<img src="data:image/png;base64,') == 4  # 2 translation panels, 1 attack panel, gallery


def test_report_makes_no_network_request(fixture_html):
    _, html = fixture_html
    assert "http://" not in html and "https://" not in html
    for attribute in re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html):
        assert attribute.startswith(("#", "data:")), attribute
    assert "<link" not in html and "@import" not in html
    assert all(target.startswith("#") for target in re.findall(r"url\(([^)]*)\)", html))  # SVG clip paths only


def test_report_contains_no_script(fixture_html):
    _, html = fixture_html
    assert "<script" not in html.lower()


def test_vendor_names_are_escaped(tmp_path):
    _write_rows(tmp_path, [_segmentation_row(EVIL, "clean", 0.5), _segmentation_row(EVIL, "noisy", 0.6)])
    html = render_report(tmp_path, exports=False).read_text(encoding="utf-8")
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_missing_parts_say_not_measured(tmp_path):
    _write_rows(tmp_path, [_segmentation_row("siemens", "clean", 0.5)])
    html = render_report(tmp_path).read_text(encoding="utf-8")
    # No manifest, no attacks, throughput, figures or config: each says so instead of failing.
    for section in ("translation", "gallery", "fgsm", "throughput", "config"):
        body = html.split(f'id="{section}"', 1)[1].split("</section>", 1)[0]
        assert NOT_MEASURED in body, section
    assert escape(SYNTHETIC_NOTICE) not in html


def test_oracle_numbers_are_marked(tmp_path):
    _write_rows(tmp_path, [_segmentation_row("ge", "clean", 0.7), _segmentation_row("ge", "unetgan", 0.8, "oracle")])
    html = render_report(tmp_path, exports=False).read_text(encoding="utf-8")
    assert "Oracle:" in html
    table1 = html.split('id="table1"', 1)[1].split("</section>", 1)[0]
    assert table1.count('<span class="badge">oracle</span>') == 1


def test_unreadable_figure_is_reported_not_fatal(tmp_path):
    _write_rows(tmp_path, [_segmentation_row("ge", "clean", 0.7)])
    (tmp_path / "figures").mkdir()
    np.savez(tmp_path / "figures" / "translation_ge_seed0.npz", original=np.zeros((1, 8, 8)))
    (tmp_path / "figures" / "gallery.png").write_bytes(b"not a png")
    html = render_report(tmp_path, exports=False).read_text(encoding="utf-8")
    assert "could not be drawn" in html and "lacks array" in html
    assert "could not be shown" in html


def test_rendering_is_deterministic(tmp_path):
    _write_rows(tmp_path, [_segmentation_row("ge", "clean", 0.7), _segmentation_row("ge", "noisy", 0.75)])
    first = render_report(tmp_path, exports=False).read_text(encoding="utf-8")
    second = render_report(tmp_path, exports=False).read_text(encoding="utf-8")
    assert first == second


def _section(html: str, anchor: str) -> str:
    return html.split(f'id="{anchor}"', 1)[1].split("</section>", 1)[0]


def test_recovery_section_follows_table1(fixture_html):
    _, html = fixture_html
    assert html.index('id="table1"') < html.index('id="recovery"') < html.index('id="per-class"')
    body = _section(html, "recovery")
    assert "Recovery of the domain-shift drop" in body and "Recovery is the share" in body
    # siemens: clean Unet 0.483 of the source's 0.874, Unet-GAN 0.806: 82% of the 0.392 drop.
    assert '<td>siemens</td><td>Unet-GAN</td><td class="num">0.392</td>' in body
    assert "0.483 &rarr; 0.806" in body and "82% (\u00b14, 2 seeds)" in body
    assert "on every target vendor: Unet-GAN." in body  # 82% on siemens, 90% on ge; noisy 6% on siemens


def test_recovery_conclusion_by_hand(tmp_path):
    # Source 0.9; siemens clean 0.5; ge clean 0.7 (drops 0.4, 0.2).
    # Unet-GAN: 0.7 on siemens (50%), 0.85 on ge (75%). Histogram matching: 0.56 on siemens only (15%).
    _write_rows(
        tmp_path,
        [
            _segmentation_row("philips", "clean", 0.9, role="source"),
            _segmentation_row("siemens", "clean", 0.5),
            _segmentation_row("siemens", "histmatch", 0.56),
            _segmentation_row("siemens", "unetgan", 0.7, "oracle"),
            _segmentation_row("ge", "clean", 0.7),
            _segmentation_row("ge", "unetgan", 0.85, "oracle"),
        ],
    )
    body = _section(render_report(tmp_path, exports=False).read_text(encoding="utf-8"), "recovery")
    assert "50% (one seed)" in body and "75% (one seed)" in body and "15% (one seed)" in body
    assert body.count('<span class="badge">oracle</span>') == 2
    assert "at least half of the drop on every target vendor: Unet-GAN (oracle)." in body


def test_recovery_section_sets_unetgan_against_the_paper_and_the_other_translators(tmp_path):
    # Source 0.9, siemens clean 0.5 (drop 0.4): Unet-GAN 0.54 (10%), CycleGAN 0.7 (50%), no feature loss 0.6 (25%).
    # The paper's own Siemens recovery: (0.805 - 0.474) / (0.892 - 0.474) = 79%.
    _write_rows(
        tmp_path,
        [
            _segmentation_row("philips", "clean", 0.9, role="source"),
            _segmentation_row("siemens", "clean", 0.5),
            _segmentation_row("siemens", "unetgan", 0.54, "unlabelled"),
            _segmentation_row("siemens", "cyclegan", 0.7, "unlabelled"),
            _segmentation_row("siemens", "unetgan_nofeat", 0.6, "unlabelled"),
        ],
    )
    body = _section(render_report(tmp_path, exports=False).read_text(encoding="utf-8"), "recovery")
    assert (
        "Unet-GAN with the paper&#39;s loss, as this suite configures it, recovers 10% on siemens "
        "(the paper&#39;s Table 1: 79% on siemens); plain CycleGAN recovers 50% on siemens; "
        "Unet-GAN without the feature loss recovers 25% on siemens."
    ) in body


def test_recovery_conclusion_none_and_no_drop(tmp_path):
    rows = [
        _segmentation_row("philips", "clean", 0.9, role="source"),
        _segmentation_row("siemens", "clean", 0.5),
        _segmentation_row("siemens", "noisy", 0.6),
        _segmentation_row("ge", "clean", 0.895),
        _segmentation_row("ge", "noisy", 0.95),
    ]
    _write_rows(tmp_path / "none", rows)
    body = _section(render_report(tmp_path / "none", exports=False).read_text(encoding="utf-8"), "recovery")
    assert "n/a (no drop to recover)" in body
    assert "on every target vendor: none. Left out (no drop to recover): ge." in body
    _write_rows(tmp_path / "flat", [rows[0], rows[3], rows[4]])
    body = _section(render_report(tmp_path / "flat", exports=False).read_text(encoding="utf-8"), "recovery")
    assert "No target vendor has a drop to recover." in body


def test_recovery_section_says_not_measured_without_a_source(tmp_path):
    _write_rows(tmp_path, [_segmentation_row("siemens", "clean", 0.5), _segmentation_row("siemens", "noisy", 0.6)])
    body = _section(render_report(tmp_path, exports=False).read_text(encoding="utf-8"), "recovery")
    assert NOT_MEASURED in body


def test_rendering_writes_nothing_on_stderr(tmp_path):
    # One throughput setting: its label names every setting and is wider than the chart, which
    # once squeezed the axes to nothing and made matplotlib warn on every render.
    run_dir = tmp_path / "run_small"
    shutil.copytree(FIXTURE, run_dir)
    lines = (run_dir / "results.jsonl").read_text(encoding="utf-8").splitlines()
    throughput = [line for line in lines if json.loads(line)["kind"] == "throughput"]
    kept = [line for line in lines if line not in throughput[1:]]
    (run_dir / "results.jsonl").write_text("\n".join(kept) + "\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "unetgan_bench", "report", str(run_dir)],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "pipeline=segment" in _section(html, "throughput") and "channels_last=False" in _section(html, "throughput")
