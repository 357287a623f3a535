"""The ``[models.NAME]`` table and every broken contract: one ``UserError`` line naming the model and the problem."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from external_nets import tiny_net

from unetgan_bench.bench.schema import load_table
from unetgan_core.errors import UserError
from unetgan_core.external import ExternalModelSpec, load_external


def one_line_error(call, *phrases):
    """Run ``call``; it must raise a one-line ``UserError`` containing every phrase."""
    with pytest.raises(UserError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message, message
    for phrase in phrases:
        assert phrase in message, message
    return message


def python_spec(factory="external_nets:tiny_net", **changes):
    return ExternalModelSpec(format="python", factory=factory, **changes)


def test_table_loads_through_the_suite_schema():
    table = {
        "format": "onnx",
        "path": "seg.onnx",
        "input_size": 128,
        "resize": "resample",
        "normalisation": "percentile",
        "percentile": [2, 98],
        "out_channels": 4,
        "blood_pool_channel": 3,
        "myocardium_channel": 2,
        "output": "probabilities",
    }
    spec = load_table(ExternalModelSpec, table, "suite.toml: [models.seg]")
    spec.check("model 'seg'")
    assert spec.percentile == [2.0, 98.0] and spec.input_size == 128 and spec.size_multiple == 1
    assert spec.contracts()["input"] == {
        "size_px": 128,
        "size_multiple": 1,
        "resize": "resample",
        "normalisation": "percentile",
        "percentile": [2.0, 98.0],
        "channels": 1,
    }
    assert spec.contracts()["output"] == {
        "channels": 4,
        "blood_pool_channel": 3,
        "myocardium_channel": 2,
        "kind": "probabilities",
    }


@pytest.mark.parametrize(
    ("table", "phrase"),
    [
        ({"format": "keras", "path": "m.h5"}, "format: expected one of torchscript, onnx, python"),
        ({"format": "onnx", "path": "m.onnx", "normalization": "unit"}, "unknown key 'normalization'"),
        ({"format": "onnx", "path": "m.onnx", "normalisation": "minmax"}, "expected one of unit, zscore, percentile"),
        ({"format": "onnx", "path": "m.onnx", "out_channels": 2}, "out_channels: expected a value >= 3"),
        ({"format": "onnx", "path": "m.onnx", "feature_layers": "enc"}, "expected a list of a string"),
    ],
)
def test_bad_table_is_one_line(table, phrase):
    one_line_error(lambda: load_table(ExternalModelSpec, table, "s.toml: [models.m]"), "[models.m]", phrase)


@pytest.mark.parametrize(
    ("changes", "phrase"),
    [
        ({"format": "python"}, 'needs factory = "package.module:function"'),
        ({"format": "python", "factory": "no_colon"}, "got 'no_colon'"),
        ({"format": "python", "factory": "m:f", "path": "x.ts"}, "path is for torchscript and onnx"),
        ({"format": "torchscript"}, "needs path"),
        ({"format": "onnx", "path": "m.onnx", "weights": "w.pt"}, 'weights is for format = "python" only'),
        ({"format": "torchscript", "path": "m.ts", "feature_layers": ["enc"]}, "runs no forward hooks"),
        ({"format": "onnx", "path": "m.onnx", "input_size": 96, "size_multiple": 16}, "not both"),
        ({"format": "onnx", "path": "m.onnx", "myocardium_channel": 1}, "both 1"),
        ({"format": "onnx", "path": "m.onnx", "blood_pool_channel": 3}, "blood_pool_channel = 3 but"),
        ({"format": "onnx", "path": "m.onnx", "percentile": [99.0, 1.0]}, "low < high"),
        ({"format": "python", "factory": "m:f", "feature_layers": ["a", "a"]}, "repeats a layer"),
    ],
)
def test_inconsistent_keys_are_one_line(changes, phrase):
    spec = ExternalModelSpec(**changes)
    one_line_error(lambda: spec.check("model 'm'"), "model 'm'", phrase)


def test_missing_model_file(tmp_path):
    spec = ExternalModelSpec(format="torchscript", path="absent.ts")
    one_line_error(lambda: load_external(spec, tmp_path, name="seg"), "'seg'", "path file not found", "absent.ts")


def test_file_that_is_not_torchscript(tmp_path):
    (tmp_path / "m.ts").write_bytes(b"not an archive")
    spec = ExternalModelSpec(format="torchscript", path="m.ts")
    one_line_error(lambda: load_external(spec, tmp_path, name="seg"), "'seg'", "m.ts is not a TorchScript archive")


def test_onnx_file_that_is_not_a_graph(tmp_path):
    pytest.importorskip("onnxruntime")
    (tmp_path / "m.onnx").write_bytes(b"garbage")
    spec = ExternalModelSpec(format="onnx", path="m.onnx")
    one_line_error(lambda: load_external(spec, tmp_path, name="seg"), "'seg'", "not a readable ONNX graph")


@pytest.mark.parametrize(
    ("kind", "phrases"),
    [
        ("four_channels", ["returned shape [2, 4, 64, 64]", "expected [2, 3, 64, 64]"]),
        ("half_size", ["returned shape [2, 3, 32, 32]"]),
        ("nan", ["NaN or infinite outputs"]),
        ("tuple", ["returns a tuple; expected one tensor"]),
        ("fixed_32", ["failed on a probe batch of shape [2, 1, 64, 64]", "check input_size"]),
    ],
)
def test_broken_output_contract_is_caught_at_load(tmp_path, kind, phrases):
    spec = python_spec("external_nets:broken", kwargs={"kind": kind})
    one_line_error(lambda: load_external(spec, tmp_path, name="bad"), "model 'bad'", *phrases)


def test_fixed_size_model_loads_when_declared_and_pads_images(tmp_path):
    seg = load_external(
        python_spec("external_nets:broken", kwargs={"kind": "fixed_32"}, input_size=32), tmp_path, name="f"
    )
    assert seg.predict(torch.rand(3, 24, 24).numpy()).shape == (3, 24, 24)
    one_line_error(
        lambda: seg.predict(torch.rand(1, 64, 64).numpy()), "'f'", "64x64 px do not fit", 'resize = "resample"'
    )


def test_probabilities_declared_for_logits(tmp_path):
    spec = python_spec(output="probabilities", kwargs={"seed": 3})
    one_line_error(lambda: load_external(spec, tmp_path, name="p"), "'p'", 'declares output = "probabilities"')


def test_wrong_declared_channel_count(tmp_path):
    spec = python_spec(out_channels=4)
    one_line_error(lambda: load_external(spec, tmp_path, name="c"), "'c'", "(out_channels = 4)")


@pytest.mark.parametrize(
    ("factory", "kwargs", "phrase"),
    [
        ("no_such_module_xyz:make", {}, "factory module 'no_such_module_xyz' not found"),
        ("external_nets:no_such_function", {}, "has no function 'no_such_function'"),
        ("external_nets:not_a_module", {}, "returned str, not a torch nn.Module"),
        ("external_nets:tiny_net", {"depth": 3}, "failed: TypeError"),
    ],
)
def test_bad_factory(tmp_path, factory, kwargs, phrase):
    one_line_error(lambda: load_external(python_spec(factory, kwargs=kwargs), tmp_path, name="u"), "'u'", phrase)


def test_factory_module_is_found_in_base_dir(tmp_path):
    (tmp_path / "suite_side_model.py").write_text(
        "from torch import nn\n\ndef make(out_channels=3):\n    return nn.Conv2d(1, out_channels, 3, padding=1)\n"
    )
    seg = load_external(python_spec("suite_side_model:make"), tmp_path, name="side")
    assert seg.predict(torch.rand(2, 16, 16).numpy()).shape == (2, 16, 16)
    assert str(tmp_path) not in __import__("sys").path  # the folder is only on the path while importing


def test_weights_that_do_not_fit(tmp_path):
    torch.save(tiny_net(width=8).state_dict(), tmp_path / "w.pt")
    spec = python_spec(weights="w.pt")
    one_line_error(lambda: load_external(spec, tmp_path, name="w"), "'w'", "w.pt does not fit the factory's module")
    torch.save({"extra.weight": torch.zeros(1), **tiny_net().state_dict()}, tmp_path / "extra.pt")
    one_line_error(
        lambda: load_external(python_spec(weights="extra.pt"), tmp_path, name="w"), "unexpected extra.weight"
    )


@dataclasses.dataclass
class _Pickled:
    value: int


def test_weights_are_read_without_unpickling_objects(tmp_path):
    torch.save({"obj": _Pickled(1)}, tmp_path / "evil.pt")
    spec = python_spec(weights="evil.pt")
    one_line_error(
        lambda: load_external(spec, tmp_path, name="w"), "'w'", "not a plain state dict", "weights_only=True"
    )
    one_line_error(lambda: load_external(python_spec(weights="none.pt"), tmp_path, name="w"), "weights file not found")


def test_unknown_feature_layer_suggests_close_names(tmp_path):
    spec = python_spec(feature_layers=["encoder.0", "decoder"])
    one_line_error(lambda: load_external(spec, tmp_path, name="h"), "'h'", "'decoder' is not a module", "did you mean")


def test_onnx_input_declaration_is_checked_against_the_graph(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    torch.onnx.export(tiny_net(), (torch.zeros(1, 1, 32, 32),), str(tmp_path / "fixed.onnx"), dynamo=False)
    spec = ExternalModelSpec(format="onnx", path="fixed.onnx")
    one_line_error(lambda: load_external(spec, tmp_path, name="o"), "'o'", "input is 32x32 px", "any size")
    bad_channels = ExternalModelSpec(format="onnx", path="fixed.onnx", input_size=32, in_channels=3)
    one_line_error(lambda: load_external(bad_channels, tmp_path, name="o"), "reads 1 channels but in_channels = 3")
    # Exported with batch 1 fixed: run one image at a time.
    seg = load_external(ExternalModelSpec(format="onnx", path="fixed.onnx", input_size=32), tmp_path, name="o")
    assert seg.predict(torch.rand(3, 32, 32).numpy()).shape == (3, 32, 32)
