"""Small networks and files for the external-model tests: a tiny two-scale segmenter, trained for a few
steps on phantom images so its Dice is not trivially 0, its TorchScript/ONNX/state-dict exports, and
factories of deliberately broken models. The factories are named as ``"external_nets:<function>"``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from unetgan_core.data.phantom.source import PhantomSource
from unetgan_core.data.sliceset import SliceSet


class TinyNet(nn.Module):
    """Two scales, ``[N, 1, H, W] -> [N, out_channels, H, W]`` for even ``H``, ``W``."""

    def __init__(self, width: int = 4, out_channels: int = 3) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU())
        self.down = nn.Conv2d(width, width, 3, stride=2, padding=1)
        self.head = nn.Conv2d(2 * width, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.encoder(x)
        d = F.relu(self.down(e))
        return self.head(torch.cat([e, F.interpolate(d, scale_factor=2.0, mode="nearest")], dim=1))


def tiny_net(width: int = 4, out_channels: int = 3, seed: int = 0) -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return TinyNet(width, out_channels)


def phantom_slices(cache_dir: Path, vendor: str = "philips") -> SliceSet:
    """12 phantom slices at 64 px (2 subjects x 3 slices x ED/ES)."""
    source = PhantomSource(size_px=64, subjects_per_vendor=2, slices_per_subject=3, cache_dir=cache_dir)
    return source.load(vendor, source.subjects(vendor))


def trained_tiny_net(slices: SliceSet, steps: int = 300) -> nn.Module:
    """A ``TinyNet`` fitted for ``steps`` Adam steps on ``slices`` (deterministic on CPU)."""
    net = tiny_net()
    x = torch.from_numpy(slices.images)[:, None]
    y = torch.from_numpy(np.where(slices.labels > 2, 0, slices.labels).astype(np.int64))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(net(x), y, weight=torch.tensor([0.2, 1.0, 1.0])).backward()
        opt.step()
    return net.eval()


def export_all(net: nn.Module, folder: Path) -> dict[str, Path]:
    """``net`` as a state dict (``weights.pt``), TorchScript (``net.ts``) and, if onnx is installed, ONNX."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"weights": folder / "weights.pt", "torchscript": folder / "net.ts"}
    torch.save(net.state_dict(), paths["weights"])
    torch.jit.script(net).save(str(paths["torchscript"]))
    try:
        import onnx  # noqa: F401  (the TorchScript-based exporter writes through it)
    except ImportError:
        return paths
    paths["onnx"] = folder / "net.onnx"
    torch.onnx.export(
        net,
        (torch.zeros(1, 1, 64, 64),),
        str(paths["onnx"]),
        dynamo=False,
        input_names=["image"],
        output_names=["scores"],
        dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}, "scores": {0: "n", 2: "h", 3: "w"}},
    )
    return paths


class _Broken(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.conv = nn.Conv2d(1, 4, 1)
        self.fixed = nn.Linear(32 * 32, 3 * 32 * 32)

    def forward(self, x: torch.Tensor):
        if self.kind == "four_channels":
            return self.conv(x)
        if self.kind == "half_size":
            return self.conv(x)[:, :3, ::2, ::2]
        if self.kind == "nan":
            return self.conv(x)[:, :3] * float("nan")
        if self.kind == "tuple":
            return self.conv(x)[:, :3], x
        # "fixed_32": only a 32 x 32 input fits the linear layer
        return self.fixed(x.flatten(1)).view(-1, 3, 32, 32)


def broken(kind: str) -> nn.Module:
    """A model that breaks its contract: ``four_channels``, ``half_size``, ``nan``, ``tuple`` or ``fixed_32``."""
    return _Broken(kind)


def not_a_module() -> object:
    return "a string"
