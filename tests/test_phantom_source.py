"""The ``phantom`` data source: ids, subsets, declared styles, and the on-disk cache."""

import numpy as np
import pytest

from unetgan_core.data import cache
from unetgan_core.data.phantom import source as phantom_source
from unetgan_core.data.sources import DATA_SOURCES, DataSource, create_source
from unetgan_core.errors import UserError

SMALL = dict(size_px=64, subjects_per_vendor=3, slices_per_subject=2)


def test_create_source_builds_a_phantom_honouring_the_protocol(tmp_path):
    src = create_source("phantom", cache_dir=tmp_path, **SMALL)
    assert isinstance(src, DataSource) and src.synthetic
    assert {"philips", "siemens", "ge", "canon"} <= set(src.vendors())
    assert src.subjects("ge") == ["ge-000", "ge-001", "ge-002"]
    assert src.cache_key()["pixel_mm"] == pytest.approx(4.5)


def test_unknown_source_names_the_known_ones():
    with pytest.raises(UserError, match="phantom"):
        create_source("nosuchsource")
    assert "phantom" in DATA_SOURCES


def test_load_returns_the_asked_subjects_in_every_slice_and_phase(tmp_path):
    src = create_source("phantom", cache_dir=tmp_path, **SMALL)
    part = src.load("siemens", ["siemens-002", "siemens-000"])
    assert sorted(set(part.subjects)) == ["siemens-000", "siemens-002"]
    assert len(part) == 2 * 2 * 2 and part.vendor == "siemens" and part.synthetic
    full = src.load("siemens", src.subjects("siemens"))
    np.testing.assert_array_equal(full.for_subjects(["siemens-000"]).images, part.for_subjects(["siemens-000"]).images)


def test_vendors_are_different_patients(tmp_path):
    src = create_source("phantom", cache_dir=tmp_path, **SMALL)
    a, b = src.load("philips", ["philips-000"]), src.load("ge", ["ge-000"])
    assert not np.array_equal(a.labels, b.labels)


def test_second_load_hits_the_cache_without_generating(tmp_path, monkeypatch):
    first = create_source("phantom", cache_dir=tmp_path, **SMALL).load("ge", ["ge-001"])
    files = list((tmp_path / "phantom").glob("*.npz"))
    assert len(files) == 1 and not list((tmp_path / "phantom").glob(".*"))  # no temporary left

    def fail(*args, **kwargs):
        raise AssertionError("generated although cached")

    monkeypatch.setattr(phantom_source, "render_subjects", fail)
    again = create_source("phantom", cache_dir=tmp_path, **SMALL).load("ge", ["ge-001"])
    np.testing.assert_array_equal(again.images, first.images)
    np.testing.assert_array_equal(again.labels, first.labels)
    with pytest.raises(AssertionError, match="generated"):  # another seed is another file
        create_source("phantom", cache_dir=tmp_path, seed=1, **SMALL).load("ge", ["ge-001"])


def test_cache_dir_defaults_to_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    assert cache.default_cache_dir() == tmp_path
    path = cache.cache_path({"a": 1}, "phantom")
    assert path.parent == tmp_path / "phantom" and path.suffix == ".npz"
    assert path == cache.cache_path({"a": 1}, "phantom") != cache.cache_path({"a": 2}, "phantom")


def test_declared_style_is_a_vendor_and_changes_the_cache_key(tmp_path):
    styles = {"lowfield": {"base": "ge", "snr": [6, 8]}}
    src = create_source("phantom", cache_dir=tmp_path, styles=styles, **SMALL)
    assert "lowfield" in src.vendors()
    assert src.load("lowfield", ["lowfield-000"]).vendor == "lowfield"
    assert src.cache_key() != create_source("phantom", cache_dir=tmp_path, **SMALL).cache_key()


@pytest.mark.parametrize(
    "options, message",
    [
        ({"styles": {"philips": {"base": "ge"}}}, "built in"),
        ({"styles": {"x": {"base": "ge", "gamma": [2, 1]}}}, "gamma"),
        ({"subjects_per_vendor": 0}, "subjects_per_vendor"),
        ({"phases": ["ED", "ED"]}, "phases"),
        ({"seed": "zero"}, "seed"),
    ],
)
def test_bad_options_are_user_errors(tmp_path, options, message):
    with pytest.raises(UserError, match=message):
        create_source("phantom", cache_dir=tmp_path, **{**SMALL, **options})


def test_unknown_vendor_or_subject_is_a_user_error(tmp_path):
    src = create_source("phantom", cache_dir=tmp_path, **SMALL)
    with pytest.raises(UserError, match="unknown phantom vendor 'toshiba'; known: canon"):
        src.subjects("toshiba")
    with pytest.raises(UserError, match="no subject 'ge-009'"):
        src.load("ge", ["ge-009"])
