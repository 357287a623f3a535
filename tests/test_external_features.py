"""Feature hooks of external models: the declared layers' outputs, usable by the Unet-GAN feature loss."""

from __future__ import annotations

import pytest
import torch
from external_nets import export_all, tiny_net

from unetgan_core.errors import UserError
from unetgan_core.external import ExternalModelSpec, load_external
from unetgan_core.losses import feature_loss

LAYERS = ["encoder.0", "down"]


def hooked(tmp_path, layers=LAYERS, **changes):
    spec = ExternalModelSpec(format="python", factory="external_nets:tiny_net", feature_layers=layers, **changes)
    return load_external(spec, tmp_path, name="hooked")


def test_features_return_the_declared_layers(tmp_path):
    seg = hooked(tmp_path)
    x = torch.rand(2, 1, 32, 32)
    feats = seg.features(x)
    assert list(feats) == LAYERS
    # encoder.0 is the first 3x3 convolution (width 4, full size); down halves the size.
    assert feats["encoder.0"].shape == (2, 4, 32, 32) and feats["down"].shape == (2, 4, 16, 16)
    net = tiny_net()
    assert torch.allclose(feats["encoder.0"], net.encoder[0](x), atol=1e-6)
    assert list(seg.features(x, ["down"])) == ["down"]


def test_features_follow_the_input_adaptation(tmp_path):
    seg = hooked(tmp_path, input_size=48)
    assert seg.features(torch.rand(1, 1, 32, 32))["encoder.0"].shape == (1, 4, 48, 48)


def test_feature_loss_runs_on_an_external_model(tmp_path):
    seg = hooked(tmp_path)
    a = torch.rand(2, 1, 32, 32)
    b = (a + 0.1 * torch.rand(2, 1, 32, 32)).clamp(0, 1).requires_grad_(True)
    assert float(feature_loss(seg, a, a.clone(), LAYERS)) == 0.0
    loss = feature_loss(seg, a, b, LAYERS)
    loss.backward()
    assert float(loss) > 0 and float(b.grad.abs().sum()) > 0


def test_undeclared_layer_is_refused(tmp_path):
    seg = hooked(tmp_path, layers=["down"])
    with pytest.raises(UserError, match="'encoder.0' is not in its feature_layers") as info:
        seg.features(torch.rand(1, 1, 32, 32), ["encoder.0"])
    assert "\n" not in str(info.value)


def test_without_feature_layers_feature_loss_is_refused_with_a_reason(tmp_path):
    seg = hooked(tmp_path, layers=[])
    assert (
        seg.feature_refusal == "model 'hooked': no feature layers declared (feature_layers = [...] in [models.hooked])"
    )
    with pytest.raises(UserError, match="no feature layers declared"):
        feature_loss(seg, torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32), ["down"])
    export_all(tiny_net(), tmp_path)
    ts = load_external(ExternalModelSpec(format="torchscript", path="net.ts"), tmp_path, name="ts")
    assert "compiled torchscript graph runs no forward hooks" in ts.feature_refusal
