"""segmentation_loss with partial labels: images without a myocardium contour train only the blood pool."""

import pytest
import torch

from unetgan_core.errors import UserError
from unetgan_core.losses import segmentation_loss


def _batch(seed=0):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, 3, 5, 6, generator=gen, dtype=torch.float64)
    labels = torch.zeros(3, 5, 6, dtype=torch.long)
    labels[:, 1:4, 1:4] = 2
    labels[:, 2, 2] = 1
    labels[1, 0, 0] = 1
    return logits, labels


def test_partial_images_ignore_the_background_myocardium_split_exactly():
    logits, labels = _batch()
    partial_labels = labels.clone()
    partial_labels[1][partial_labels[1] == 2] = 0  # image 1 has no myocardium contour: its rim is "unknown"
    myo = torch.tensor([True, False, True])
    loss = segmentation_loss(logits, partial_labels, myo_labelled=myo)
    swapped = logits.clone()
    swapped[1, [0, 2]] = logits[1, [2, 0]]  # any split between background and myocardium in image 1
    torch.testing.assert_close(segmentation_loss(swapped, partial_labels, myo_labelled=myo), loss, rtol=1e-12, atol=0)
    # ... but the blood-pool scores of image 1 still count.
    louder = logits.clone()
    louder[1, 1] += 1.0
    assert segmentation_loss(louder, partial_labels, myo_labelled=myo) != loss


def test_partial_loss_by_hand():
    logits, labels = _batch(1)
    labels[1][labels[1] == 2] = 0
    myo = torch.tensor([True, False, True])
    p = logits.softmax(dim=1)
    full = torch.tensor([0, 2])
    # Cross-entropy: full images as usual; image 1 scores "blood pool" or "not blood pool" per pixel.
    nll_full = -p[full].gather(1, labels[full][:, None]).log()
    p1 = p[1, 1]
    nll_partial = torch.where(labels[1] == 1, -p1.log(), -(1 - p1).log())
    ce = torch.cat([nll_full.flatten(), nll_partial.flatten()]).mean()

    def dice(prob, truth):
        return (2 * (prob * truth).sum() + 1) / (prob.sum() + truth.sum() + 1)

    blood = dice(p[:, 1], (labels == 1).double())
    myocardium = dice(p[full, 2], (labels[full] == 2).double())  # image 1 left out
    expected = ce + 1 - (blood + myocardium) / 2
    torch.testing.assert_close(segmentation_loss(logits, labels, myo_labelled=myo), expected, rtol=1e-10, atol=0)


def test_an_all_true_mask_is_the_plain_loss_and_bad_masks_are_refused():
    logits, labels = _batch()
    plain = segmentation_loss(logits, labels)
    torch.testing.assert_close(
        segmentation_loss(logits, labels, myo_labelled=torch.ones(3, dtype=torch.bool)), plain, rtol=0, atol=0
    )
    with pytest.raises(UserError, match=r"myo_labelled must be \[N\] = \[3\]"):
        segmentation_loss(logits, labels, myo_labelled=torch.ones(2, dtype=torch.bool))
    with pytest.raises(UserError, match="with a myocardium class"):
        segmentation_loss(logits[:, :2], labels.clamp(max=1), myo_labelled=torch.zeros(3, dtype=torch.bool))


def test_myocardium_weight_by_hand_and_one_is_unweighted():
    logits, labels = _batch(2)
    torch.testing.assert_close(segmentation_loss(logits, labels, myo_weight=1.0), segmentation_loss(logits, labels))
    w = 3.0
    weights = torch.tensor([1.0, 1.0, w], dtype=torch.float64)
    ce = torch.nn.functional.cross_entropy(logits, labels, weight=weights)
    torch.testing.assert_close(segmentation_loss(logits, labels, dice_weight=0.0, myo_weight=w), ce)
    p, g = logits.softmax(dim=1), torch.nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).double()
    d = [(2 * (p[:, c] * g[:, c]).sum() + 1) / (p[:, c].sum() + g[:, c].sum() + 1) for c in (1, 2)]
    torch.testing.assert_close(
        segmentation_loss(logits, labels, ce_weight=0.0, myo_weight=w), 1 - (d[0] + w * d[1]) / (1 + w)
    )
    # With partial labels only annotated myocardium pixels are weighted: an image without a contour keeps weight 1.
    partial = labels.clone()
    partial[1][partial[1] == 2] = 0
    myo = torch.tensor([True, False, True])
    nll = -logits.log_softmax(dim=1).gather(1, partial[:, None])[:, 0]
    not_blood = -torch.logaddexp(logits.log_softmax(dim=1)[:, 0], logits.log_softmax(dim=1)[:, 2])
    per_pixel = torch.where((~myo)[:, None, None] & (partial != 1), not_blood, nll)
    pixel_w = weights[partial]
    torch.testing.assert_close(
        segmentation_loss(logits, partial, dice_weight=0.0, myo_labelled=myo, myo_weight=w),
        (per_pixel * pixel_w).sum() / pixel_w.sum(),
    )


def test_unet_myo_weight_keeps_existing_keys_at_its_default():
    from unetgan_core.hashing import canonical
    from unetgan_core.training import SegTrainConfig

    assert "myo_weight" not in canonical(SegTrainConfig())  # every trained Unet's key is as before
    assert canonical(SegTrainConfig(myo_weight=2.0))["myo_weight"] == 2.0
    with pytest.raises(UserError, match="myo_weight"):
        SegTrainConfig(myo_weight=0.0)
