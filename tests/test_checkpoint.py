"""Checkpoints (round trip, rebuild, refusal of code-running pickles) and device helpers."""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from unetgan_core.checkpoint import build_from_checkpoint, load_checkpoint, read_checkpoint, save_checkpoint
from unetgan_core.device import autocast, eval_mode, resolve_device, seed_everything, synchronize
from unetgan_core.errors import DataError, UserError
from unetgan_core.models import create_model


class _RunsCodeWhenUnpickled:
    """A payload whose unpickling calls ``open(marker, "w")``: a stand-in for arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _config(**kwargs) -> dict:
    return {"model": {"name": "lv_unet", "kwargs": {"width": 4, **kwargs}}, "lr": 1e-4, "seed": 3}


def test_round_trip_keeps_weights_config_and_extra(tmp_path: Path):
    torch.manual_seed(0)
    model = create_model("lv_unet", width=4)
    opt = torch.optim.Adam(model.parameters())
    path = save_checkpoint(
        tmp_path / "sub" / "unet.pt", model, _config(), extra={"step": 5, "optimizer": opt.state_dict()}
    )
    state_dict, config = load_checkpoint(path)
    assert config == _config()
    assert state_dict.keys() == model.state_dict().keys()
    assert all(torch.equal(state_dict[k], v) for k, v in model.state_dict().items())
    ckpt = read_checkpoint(path)
    assert ckpt.extra["step"] == 5
    assert "param_groups" in ckpt.extra["optimizer"]
    # Only the checkpoint is left behind: the temp file was renamed.
    assert [p.name for p in path.parent.iterdir()] == ["unet.pt"]


def test_build_from_checkpoint_recreates_the_same_function(tmp_path: Path):
    torch.manual_seed(0)
    model = create_model("lv_unet", width=4, blocks_per_stage=(1, 1, 2)).eval()
    path = save_checkpoint(tmp_path / "m.pt", model, _config(blocks_per_stage=(1, 1, 2)))
    rebuilt = build_from_checkpoint(path)
    assert not rebuilt.training
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)


def test_spectral_norm_discriminator_round_trips(tmp_path: Path):
    model = create_model("patch_discriminator", width=4, spectral_norm=True, norm="none")
    spec = {"name": "patch_discriminator", "kwargs": {"width": 4, "spectral_norm": True, "norm": "none"}}
    path = save_checkpoint(tmp_path / "d.pt", model, {"model": spec})
    rebuilt = build_from_checkpoint(path)
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model.eval()(x))


def test_crafted_pickle_is_refused_and_its_code_never_runs(tmp_path: Path):
    marker = tmp_path / "code_ran"
    payload = _RunsCodeWhenUnpickled(marker)
    pickle.loads(pickle.dumps(payload)).close()  # the payload is real: plain unpickling runs it
    assert marker.exists()
    marker.unlink()

    path = tmp_path / "evil.pt"
    torch.save({"format": "unetgan-checkpoint", "version": 1, "state_dict": payload}, path)
    with pytest.raises(DataError, match="evil.pt"):
        load_checkpoint(path)
    # A bare pickle (not a torch zip file) with the same payload is refused too.
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(DataError, match="raw.pt"):
        load_checkpoint(raw)
    assert not marker.exists()


def test_refusals_name_the_cause_and_never_advise_turning_weights_only_off(tmp_path: Path):
    evil = tmp_path / "evil.pt"
    torch.save({"payload": _RunsCodeWhenUnpickled(tmp_path / "marker")}, evil)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"garbage" * 10)
    truncated = save_checkpoint(tmp_path / "m.pt", create_model("lv_unet", width=4), _config())
    truncated.write_bytes(truncated.read_bytes()[:300])
    for path, cause in ((evil, "Unsupported global"), (garbage, "Unsupported operand"), (truncated, "zip archive")):
        with pytest.raises(DataError) as info:
            load_checkpoint(path)
        message = str(info.value)
        assert cause in message and path.name in message
        assert "weights_only" not in message and "weights only" not in message.lower()
        assert "\n" not in message and "\x1b" not in message


@pytest.mark.parametrize(
    "payload, match",
    [
        ({"state_dict": {}}, "not a unetgan-checkpoint"),
        ({"format": "unetgan-checkpoint", "version": 99}, "version 99"),
        ({"format": "unetgan-checkpoint", "version": 1, "state_dict": {}, "config_json": "{oops"}, "damaged"),
    ],
)
def test_foreign_or_damaged_files_are_data_errors(tmp_path: Path, payload, match):
    path = tmp_path / "x.pt"
    torch.save(payload, path)
    with pytest.raises(DataError, match=match):
        load_checkpoint(path)


def test_missing_and_truncated_files_are_data_errors(tmp_path: Path):
    with pytest.raises(DataError, match="no such file"):
        load_checkpoint(tmp_path / "absent.pt")
    path = save_checkpoint(tmp_path / "m.pt", create_model("lv_unet", width=4), _config())
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="m.pt"):
        load_checkpoint(path)


def test_build_needs_a_model_spec_that_fits_the_weights(tmp_path: Path):
    model = create_model("lv_unet", width=4)
    no_spec = save_checkpoint(tmp_path / "a.pt", model, {"lr": 1})
    with pytest.raises(DataError, match="model spec"):
        build_from_checkpoint(no_spec)
    wrong = save_checkpoint(tmp_path / "b.pt", model, {"model": {"name": "lv_unet", "kwargs": {"width": 8}}})
    with pytest.raises(DataError, match="do not fit"):
        build_from_checkpoint(wrong)


def test_unsaveable_config_or_extra_is_a_user_error(tmp_path: Path):
    model = create_model("lv_unet", width=4)
    with pytest.raises(UserError, match="JSON"):
        save_checkpoint(tmp_path / "a.pt", model, {"f": object()})
    with pytest.raises(UserError, match="extra"):
        save_checkpoint(tmp_path / "b.pt", model, {}, extra={"fn": print})
    assert list(tmp_path.iterdir()) == []


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UserError, match="known: cpu, cuda, auto"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised on a machine without CUDA")
def test_cuda_without_a_gpu_is_a_user_error():
    with pytest.raises(UserError, match="no CUDA device"):
        resolve_device("cuda")


def test_seed_everything_repeats_every_random_stream():
    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    seed_everything(11)
    first = draw()
    gen = seed_everything(11)
    assert draw() == first
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.rand(1, generator=gen).item() == torch.rand(1, generator=torch.Generator().manual_seed(11)).item()
    with pytest.raises(UserError, match="seed"):
        seed_everything(-1)


def test_autocast_helper():
    a = torch.ones(2, 2)
    with autocast("cpu", enabled=True, dtype="bf16"):
        assert (a @ a).dtype == torch.bfloat16
    with autocast("cpu", enabled=False):
        assert (a @ a).dtype == torch.float32
    with pytest.raises(UserError, match="CUDA"):
        autocast("cpu", enabled=True, dtype=torch.float16)
    with pytest.raises(UserError, match="dtype"):
        autocast("cpu", enabled=True, dtype="int8")


def test_eval_mode_restores_training_mode_and_synchronize_on_cpu_is_a_no_op():
    net = create_model("patch_discriminator", width=4)
    with eval_mode(net):
        assert not net.training
    assert net.training
    synchronize("cpu")
