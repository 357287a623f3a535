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
