"""The named evaluation protocols: known answers and equivalence with the reference evaluators' steps.

The reference (``gabrielkasmi/wam``, ``src/evaluation_helpers.py``) is re-implemented here, independently of
the engine, from its description: ``np.argsort(map)[::-1]`` ranking, ``int(N / n_iter)`` features per step
and the last point all of them; pixel baselines ``mask x image``; WAM ``pywt.wavedec2`` per channel with the
mask on ``pywt.coeffs_to_array``'s layout; min-max to uint8 (float32, truncation); then the model's transform.
"""

from __future__ import annotations

import numpy as np
import pytest
import pywt
import torch
from torchvision.transforms import Normalize

import metrics
from metrics import protocols
from metrics.perturbation import feature_rank, point_counts
from tests.metrics.helpers import Recording

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
NORMALIZE = Normalize(MEAN, STD)  # ImageNet: the preprocessing the protocols apply after a perturbation


class MeanModel(torch.nn.Module):
    """Two logits: ``[mean(x), 0]`` (an oracle that reads only the image mean)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.flatten(1).mean(1)
        return torch.stack([m, torch.zeros_like(m)], dim=1)


def _reference_masks(explanation: np.ndarray, n_iter: int) -> np.ndarray:
    """Deletion masks ``[n_iter + 1, *shape]`` of the reference's ``generate_masks``."""
    order = np.argsort(explanation, axis=None)[::-1]
    per_step = int(order.size / n_iter)
    masks = np.ones((n_iter + 1, explanation.size))
    for i in range(n_iter):
        masks[i + 1, order[: min((i + 1) * per_step, order.size)]] = 0
    masks[-1] = 0
    return masks.reshape(n_iter + 1, *explanation.shape)


def _minmax_uint8(img: np.ndarray) -> np.ndarray:
    img = img.astype(np.float32)
    with np.errstate(invalid="ignore"):
        scaled = (img - np.min(img)) / (np.max(img) - np.min(img)).astype(np.float32)
    return np.nan_to_num(scaled * 255, nan=0.0).astype(np.uint8)


def _reference_inputs(img: np.ndarray, explanation: np.ndarray, n_iter: int, wavelet_levels: int | None):
    """The model inputs (normalised tensors) of the reference's deletion for one image ``[H, W, 3]``."""
    out = []
    for mask in _reference_masks(explanation, n_iter):
        if wavelet_levels is None:
            perturbed = mask[:, :, None] * img
        else:
            channels = []
            for c in range(3):
                arr, slices = pywt.coeffs_to_array(pywt.wavedec2(img[:, :, c], "haar", level=wavelet_levels))
                coeffs = pywt.array_to_coeffs(arr * mask, slices, output_format="wavedec2")
                channels.append(pywt.waverec2(coeffs, "haar"))
            perturbed = np.stack(channels, axis=2)
        tensor = torch.from_numpy(_minmax_uint8(perturbed).astype(np.float32) / 255).permute(2, 0, 1)
        out.append(NORMALIZE(tensor[None])[0])
    return torch.stack(out)


def _image(seed: int = 0, size: int = 16) -> torch.Tensor:
    return 0.1 + 0.8 * torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("domain", ["pixel", "wavelet"])
def test_reference_protocol_equals_the_reference_steps(image_model, domain):
    x = _image()
    explanation = torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(1))  # no ties
    model = Recording(image_model)
    x_in, options = protocols.setup("reference", "images", domain, x)
    extra = {"wavelet": "haar", "levels": 2, "mode": "symmetric"} if domain == "wavelet" else {}
    metrics.deletion(model, x_in, 0, explanation, domain=domain, steps=5, preprocess=NORMALIZE, **options, **extra)
    ours = model.seen()
    theirs = _reference_inputs(x[0].permute(1, 2, 0).numpy(), explanation[0].numpy(), 5,
                               2 if domain == "wavelet" else None)
    assert ours.shape == theirs.shape == (6, 3, 16, 16)
    if domain == "pixel":  # mask x image is exact: so is the uint8 rescale
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
        return
    # the two inverse transforms differ by float round-off, which can move a value across a uint8 step:
    # equal to 1e-5 except where the rescaled value lies within 1e-4 of a step (then one step apart at most)
    step = 1 / 255 / torch.tensor(STD).view(1, 3, 1, 1)
    gap = (ours - theirs).abs()
    on_step = (gap - step).abs() < 1e-5
    assert ((gap < 1e-5) | on_step).all()
    assert on_step.float().mean() < 0.01


def test_reference_counts_and_tie_order_follow_the_reference():
    assert point_counts(10, steps=4, counts="floor").tolist() == [0, 2, 4, 6, 10]
    assert point_counts(10, steps=4, counts="exact").tolist() == [0, 2, 5, 7, 10]
    assert point_counts(10, fractions=[0.5, 1.0]).tolist() == [5, 10]
    scores = torch.tensor([[0.0, 1.0, 1.0, 0.5, 1.0]])
    assert feature_rank(scores, "index").tolist() == [[4, 0, 1, 3, 2]]
    assert feature_rank(scores, "reverse").tolist() == [[4, 2, 1, 3, 0]]  # argsort(stable)[::-1]
    ranks = {tuple(feature_rank(scores, "random", seed=s)[0].tolist()) for s in range(60)}
    assert len(ranks) == 6 and all(r[0] == 4 and r[3] == 3 for r in ranks)  # ties shuffled, order kept


@pytest.mark.parametrize("protocol", protocols.PROTOCOLS)
@pytest.mark.parametrize("domain", ["pixel", "wavelet"])
def test_removed_images_are_black(image_model, protocol, domain):
    """Fully removed = the model's normalisation of zeros, under both protocols and in both domains."""
    x = _image(2)
    model = Recording(image_model)
    x_in, options = protocols.setup(protocol, "images", domain, x)
    extra = {"wavelet": "haar", "levels": 2, "mode": "reflect"} if domain == "wavelet" else {}
    curve = metrics.deletion(model, x_in, 0, torch.rand(1, 16, 16), domain=domain, steps=4, preprocess=NORMALIZE,
                             **options, **extra)
    last = model.seen()[-1]
    torch.testing.assert_close(last, NORMALIZE(torch.zeros(1, 3, 16, 16))[0])
    assert curve.probs.shape == (1, 5)


def test_mean_oracle_clean_is_linear_and_reference_shows_the_rescale():
    """A model reading the image mean, a uniform attribution (every feature tied)."""
    steps = 8
    flat = torch.tensor([0.3, 0.5, 0.7]).view(1, 3, 1, 1).expand(1, 3, 16, 16).contiguous()
    uniform = torch.ones(1, 16, 16)
    x_in, options = protocols.setup("clean", "images", "pixel", flat)
    clean = metrics.deletion(MeanModel(), x_in, 0, uniform, steps=steps, score="logit", **options)
    fraction = torch.arange(steps + 1) / steps
    torch.testing.assert_close(clean.probs[0], 0.5 * (1 - fraction))
    assert clean.degenerate.tolist() == [True]
    # reference: a constant image rescales to black (0/0), a partly removed one to its kept pixels' ratios
    x = 0.1 + 0.4 * torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(3))  # a dark image
    x_in, options = protocols.setup("reference", "images", "pixel", x)
    ref = metrics.deletion(MeanModel(), x_in, 0, uniform, steps=steps, score="logit", **options)
    img = x[0].permute(1, 2, 0).numpy()
    removed = np.arange(256)[::-1]  # every position tied: higher index first
    masks = [np.isin(np.arange(256), removed[: k * 32], invert=True).reshape(16, 16) for k in range(steps + 1)]
    expected = [_minmax_uint8(m[:, :, None] * img).astype(np.float32).mean() / 255 for m in masks]
    torch.testing.assert_close(ref.probs[0], torch.tensor(expected), atol=1e-6, rtol=0)
    assert ref.probs[0, 0] > x.mean() + 0.15  # the intact image is stretched to [0, 1]


def test_clean_audio_bins_go_to_the_clip_silence_and_reference_to_zero_db():
    spectrogram = 20 + 30 * torch.rand(2, 1, 8, 10, generator=torch.Generator().manual_seed(4))
    for protocol, expected in (("clean", spectrogram.flatten(1).amin(1)), ("reference", torch.zeros(2))):
        model = Recording(MeanModel())
        x_in, options = protocols.setup(protocol, "audio", "pixel", spectrogram)
        metrics.deletion(model, x_in, 0, torch.rand(2, 8, 10), steps=2, **options)
        last = model.seen().view(2, 3, -1)[:, -1]
        torch.testing.assert_close(last, expected[:, None].expand_as(last))


def test_reference_audio_wavelet_is_peak_normalised_before_and_after():
    wave = torch.randn(1, 64, generator=torch.Generator().manual_seed(5)) * 0.3
    model = Recording(MeanModel())
    x_in, options = protocols.setup("reference", "audio", "wavelet", wave)
    torch.testing.assert_close(x_in, wave / wave.max())
    metrics.deletion(model, x_in, 0, torch.rand(1, 64), domain="wavelet", steps=4, levels=2, **options)
    seen = model.seen()
    assert torch.allclose(seen[:-1].amax(1), torch.ones(4))  # every rebuilt point divided by its maximum
    assert torch.equal(seen[-1], torch.zeros(64))  # all coefficients removed: silence, not 0 / 0


def test_minmax_uint8_of_black_is_black_and_rank_maps():
    x = torch.zeros(2, 3, 4, 4)
    x[1, 0, 0, 0] = 0.5
    out = protocols.minmax_uint8(x)
    assert torch.equal(out[0], torch.zeros(3, 4, 4)) and out[1, 0, 0, 0] == 1 and out[1].sum() == 1
    bands = [torch.tensor([[[2.0, 4.0]]]), torch.zeros(1, 1, 2)]
    per_band = protocols.rank_maps(bands, "per_band")
    assert per_band[0].tolist() == [[[0.5, 1.0]]] and torch.equal(per_band[1], torch.zeros(1, 1, 2))
    assert protocols.rank_maps(bands, "raw") is bands
    with pytest.raises(ValueError, match="protocol"):
        protocols.setup("paper", "images", "pixel", x)
