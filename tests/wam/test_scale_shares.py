"""``Explanation.scale_shares``: the one definition of how much of WAM's attribution lies at each scale.

Oracles: a model that sees only the approximation (or only the finest details) puts its whole share there; the
shares are the level sums of the raw band magnitudes (recomputed here from ``grads`` by hand), not of the
per-band normalised display maps; per coefficient divides by each level's coefficient count.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from wam import WAM

SIZE = 32


class ApproximationOnly(nn.Module):
    """A Haar low-pass (8x8 block means = the level-3 approximation of a 32x32 input) before a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(3 * 16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.avg_pool2d(x, 8).flatten(1))


class FinestOnly(nn.Module):
    """Only the finest detail band: the input minus its 2x2 block means (the level-1 approximation), then linear."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(3 * SIZE * SIZE, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        detail = x - F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest")
        return self.head(detail.flatten(1))


def _explain(model: nn.Module, method: str, seed: int):
    torch.manual_seed(seed)
    x = torch.rand(3, 3, SIZE, SIZE)
    return WAM(model.eval(), ndim=2, wavelet="haar", levels=3, mode="reflect", method=method, n_samples=4)(
        x, torch.tensor([0, 1, 2]))


@pytest.mark.parametrize("method", ["smooth", "integrated"])
def test_a_model_that_sees_only_the_approximation_puts_its_share_there(method):
    shares = _explain(ApproximationOnly(), method, 1).scale_shares()
    assert shares.shape == (3, 4)
    assert (shares[:, -1] >= 0.99).all(), shares


@pytest.mark.parametrize("method", ["smooth", "integrated"])
def test_a_model_that_sees_only_the_finest_band_puts_its_share_on_level_1(method):
    shares = _explain(FinestOnly(), method, 2).scale_shares()
    assert (shares[:, 0] >= 0.99).all(), shares


def test_shares_are_the_raw_level_sums_not_the_normalised_maps():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 5)).eval()
    expl = WAM(model, ndim=2, levels=3, method="integrated", n_samples=8)(torch.rand(2, 3, SIZE, SIZE), [1, 3])
    approx, l3, l2, l1 = expl.grads  # ptwt: approximation, then details coarsest (level 3) to finest (level 1)
    raw = torch.stack([sum(d.mean(1).abs().sum((1, 2)) for d in level) for level in (l1, l2, l3)]
                      + [approx.mean(1).abs().sum((1, 2))], dim=1)
    torch.testing.assert_close(expl.scale_shares(), raw / raw.sum(1, keepdim=True))
    counts = torch.tensor([3 * 16 * 16, 3 * 8 * 8, 3 * 4 * 4, 4 * 4], dtype=raw.dtype)
    density = raw / counts
    torch.testing.assert_close(expl.scale_shares(per_coefficient=True), density / density.sum(1, keepdim=True))
    # the per-band normalised display maps give another (wrong) answer: each band's maximum is 1
    display = expl.scales(approx=True).flatten(2).sum(2)
    assert not torch.allclose(display / display.sum(1, keepdim=True), expl.scale_shares(), atol=1e-2)


def test_a_zero_attribution_is_an_error_not_a_nan():
    model = nn.Sequential(nn.Flatten(), nn.Linear(SIZE * SIZE, 2))
    nn.init.zeros_(model[1].weight)
    expl = WAM(model, ndim=2, method="gradient")(torch.rand(2, 1, SIZE, SIZE), [0, 1])
    with pytest.raises(ValueError, match="zero attribution for samples"):
        expl.scale_shares()


def test_reference_maps_are_refused():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, 2))
    expl = WAM(model, ndim=2, method="gradient", aggregation="reference")(torch.rand(2, 3, SIZE, SIZE), [0, 1])
    with pytest.raises(ValueError, match="aggregation"):
        expl.scale_shares()
