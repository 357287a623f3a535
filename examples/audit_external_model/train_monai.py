"""Train a small MONAI ``BasicUNet`` on the phantom's source style and export it for the suite's audit.

The training uses MONAI's own pieces (``set_determinism``, ``Dataset``/``DataLoader`` of dicts, random
flip and rotation transforms, ``DiceCELoss``, ``DiceMetric``), on the philips style at 64 px as
``suites/quick.toml`` configures the phantom. It writes, into ``--out``:

- ``weights.pt``: the state dict (for ``format = "python"``, read with ``weights_only=True``);
- ``model.ts``: TorchScript (``torch.jit.script``);
- ``model.onnx``: ONNX with dynamic batch, height and width (the TorchScript-based exporter,
  ``dynamo=False``: torch's default dynamo exporter needs the extra package ``onnxscript``);
- ``models.toml``: one ``[models.NAME]`` table per format, declaring the input and output contracts;
- ``audit_suite.toml``: ``audit_suite.toml`` of this folder with those tables, a suite ``unetgan-bench run`` takes;
- ``monai_factory.py``: a copy of this folder's factory, so the ``python`` table works from ``--out``.

Run ``python train_monai.py --out runs/monai`` (a few minutes on a CPU) or add ``--toy`` for
a seconds-long run that only shows the path works.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import torch
from monai.data import DataLoader, Dataset
from monai.losses import DiceCELoss
from monai.metrics import DiceMetric
from monai.networks import one_hot
from monai.transforms import Compose, RandFlipd, RandRotate90d
from monai.utils import set_determinism

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from monai_factory import FULL_FEATURES, TOY_FEATURES, basic_unet  # noqa: E402

from unetgan_core.data.phantom.source import PhantomSource  # noqa: E402

SOURCE_STYLE = "philips"
SIZE_PX = 64
SIZE_MULTIPLE = 16  # BasicUNet pools four times

# (subjects for training, subjects for validation, slices per subject, epochs, features)
SETTINGS = {
    "full": (12, 3, 6, 40, FULL_FEATURES),
    "toy": (2, 1, 2, 2, TOY_FEATURES),
}


def phantom_dicts(source: PhantomSource, subjects: list[str]) -> list[dict]:
    """One ``{"image": [1, H, W], "label": [1, H, W]}`` per slice (RV, label 3, scored as background)."""
    slices = source.load(SOURCE_STYLE, subjects)
    labels = torch.from_numpy(slices.labels).long()
    labels[labels > 2] = 0
    images = torch.from_numpy(slices.images)
    return [{"image": images[i][None], "label": labels[i][None]} for i in range(len(slices))]


def train(out: Path, mode: str, seed: int = 0) -> dict[str, float]:
    """Train, validate and export; returns the validation Dice per class and the training time."""
    n_train, n_val, slices, epochs, features = SETTINGS[mode]
    set_determinism(seed=seed)
    source = PhantomSource(size_px=SIZE_PX, subjects_per_vendor=n_train + n_val, slices_per_subject=slices, seed=seed)
    subjects = source.subjects(SOURCE_STYLE)
    augment = Compose(
        [
            RandFlipd(keys=["image", "label"], prob=0.5, spatial_axis=0),
            RandRotate90d(keys=["image", "label"], prob=0.5, spatial_axes=(0, 1)),
        ]
    )
    train_loader = DataLoader(
        Dataset(phantom_dicts(source, subjects[:n_train]), transform=augment), batch_size=16, shuffle=True
    )
    val = phantom_dicts(source, subjects[n_train:])

    net = basic_unet(features)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    start = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        total = 0.0
        for batch in train_loader:
            optimiser.zero_grad()
            loss = loss_fn(net(batch["image"]), batch["label"])
            loss.backward()
            optimiser.step()
            total += float(loss)
        print(f"epoch {epoch + 1}/{epochs}: loss {total / len(train_loader):.3f}", flush=True)
    seconds = time.perf_counter() - start

    net.eval()
    metric = DiceMetric(include_background=False, reduction="mean_batch")
    with torch.no_grad():
        images = torch.stack([d["image"] for d in val])
        labels = torch.stack([d["label"] for d in val])
        pred = net(images).argmax(dim=1, keepdim=True)
        metric(one_hot(pred, num_classes=3), one_hot(labels, num_classes=3))
    blood_pool, myo = (float(v) for v in metric.aggregate())
    export(net, features, out)
    return {"val_dice_blood_pool": blood_pool, "val_dice_myo": myo, "train_seconds": seconds}


def export(net: torch.nn.Module, features: tuple[int, ...], out: Path) -> None:
    """Write the state dict, TorchScript, ONNX, the factory and the ``[models.NAME]`` tables into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    net = net.eval()
    torch.save(net.state_dict(), out / "weights.pt")
    torch.jit.script(net).save(str(out / "model.ts"))
    torch.onnx.export(
        net,
        (torch.zeros(1, 1, SIZE_PX, SIZE_PX),),
        str(out / "model.onnx"),
        dynamo=False,
        input_names=["image"],
        output_names=["scores"],
        dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}, "scores": {0: "n", 2: "h", 3: "w"}},
    )
    shutil.copy(HERE / "monai_factory.py", out / "monai_factory.py")
    contract = f'size_multiple = {SIZE_MULTIPLE}\nnormalisation = "unit"\nout_channels = 3\nblood_pool_channel = 1\nmyocardium_channel = 2\noutput = "logits"\n'
    tables = (
        f'[models.monai_torchscript]\nformat = "torchscript"\npath = "model.ts"\n{contract}\n'
        f'[models.monai_onnx]\nformat = "onnx"\npath = "model.onnx"\n{contract}\n'
        f'[models.monai_python]\nformat = "python"\nfactory = "monai_factory:basic_unet"\n'
        f'kwargs = {{ features = {list(features)} }}\nweights = "weights.pt"\n'
        f'feature_layers = ["down_3", "down_4"]\n{contract}'
    )
    (out / "models.toml").write_text(
        "# The MONAI BasicUNet of train_monai.py in three formats; paths are relative to this file.\n\n" + tables
    )
    # A runnable suite: the example's audit settings plus these tables (paths relative to ``out``).
    (out / "audit_suite.toml").write_text((HERE / "audit_suite.toml").read_text() + "\n" + tables)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the exported model files")
    parser.add_argument("--toy", action="store_true", help="a seconds-long run on a few slices (CI)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = train(args.out, "toy" if args.toy else "full", args.seed)
    print(
        f"validation Dice (philips, {SIZE_PX} px): blood pool {result['val_dice_blood_pool']:.3f}, "
        f"myocardium {result['val_dice_myo']:.3f}; trained in {result['train_seconds']:.0f} s; wrote {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
