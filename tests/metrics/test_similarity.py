"""Map views (metrics.maps) and similarities (metrics.similarity): scipy's Spearman, an independent SSIM
(scipy.ndimage Gaussian filters), 1D / 2D / 3D, pixel and wavelet maps, batch invariance, errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import scipy.stats
import torch

from metrics import maps, similarity
from wam import transform


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _ssim_reference(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two maps normalised to [0, 1] by their max |value|: Gaussian sigma 1.5 over 11 taps on every axis
    of length > 1, mirror padding (torch's "reflect"), c1 = 0.01^2, c2 = 0.03^2, mean over the whole map."""
    a, b = np.abs(a) / np.abs(a).max(), np.abs(b) / np.abs(b).max()
    sigma = [1.5 if n > 1 else 0.0 for n in a.shape]

    def blur(v: np.ndarray) -> np.ndarray:
        return scipy.ndimage.gaussian_filter(v, sigma, mode="mirror", truncate=3.5)

    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(s.mean())


def test_ranks_average_ties_like_scipy():
    v = torch.tensor([[3.0, 1.0, 3.0, 2.0, 1.0, 3.0], [0.5, 0.5, 0.5, 0.5, 0.5, 0.5]])
    expected = np.stack([scipy.stats.rankdata(row, method="average") for row in v.numpy()])
    np.testing.assert_array_equal(similarity.ranks(v).numpy(), expected)


@pytest.mark.parametrize("ties", [False, True])
def test_rank_correlation_equals_scipy(ties):
    gen = _gen(0)
    u, v = torch.randn(6, 2000, generator=gen), torch.randn(6, 2000, generator=gen)
    v = v + 0.7 * u  # correlated rows
    if ties:
        u, v = (u * 3).round(), (v * 2).round()
    ours = similarity.rank_correlation(u, v)
    expected = [scipy.stats.spearmanr(a, b).statistic for a, b in zip(u.numpy(), v.numpy(), strict=True)]
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-6, rtol=0)


def test_spearman_reads_absolute_values_and_flags_constant_maps():
    a = torch.rand(3, 8, 8, generator=_gen(1)) + 0.1
    assert torch.allclose(similarity.spearman(a, -3 * a), torch.ones(3))
    b = a.clone()
    b[1] = 0.0  # all-zero map: no ranking
    out = similarity.similarities(a, b)
    assert out["spearman"][1] == 0 and out["degenerate"].tolist() == [False, True, False]
    assert list(out) == ["spearman", "ssim", "degenerate"]


@pytest.mark.parametrize("shape", [(3, 50), (3, 20, 24), (2, 9, 12, 10)])
def test_ssim_equals_independent_gaussian_ssim(shape):
    gen = _gen(2)
    a = torch.randn(shape, generator=gen, dtype=torch.float64)
    b = a + 0.8 * torch.randn(shape, generator=gen, dtype=torch.float64)
    ours = similarity.ssim(a, b)
    expected = [_ssim_reference(x.numpy(), y.numpy()) for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-5, rtol=0)
    assert torch.allclose(similarity.ssim(a, -2 * a), torch.ones(shape[0], dtype=torch.float32), atol=1e-6)


@pytest.mark.parametrize("shape", [(3, 50), (3, 20, 24), (2, 9, 12, 10)])
def test_ssim_equals_torchmetrics(shape):
    """The separable computation against torchmetrics' own (2D and 3D as they are, 1D as a 1 x T image with
    sigma (0.1, 1.5): one tap across)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    gen = _gen(3)
    a, b = torch.rand(shape, generator=gen), torch.rand(shape, generator=gen)
    ua, ub = similarity.unit(a).unsqueeze(1), similarity.unit(b).unsqueeze(1)
    sigma = similarity.SIGMA
    if len(shape) == 2:
        ua, ub, sigma = ua.unsqueeze(2), ub.unsqueeze(2), (0.1, similarity.SIGMA)
    expected = structural_similarity_index_measure(ua, ub, gaussian_kernel=True, sigma=sigma, data_range=1.0,
                                                   reduction="none")
    torch.testing.assert_close(similarity.ssim(a, b), expected, atol=1e-6, rtol=0)


def test_wavelet_maps_flatten_for_spearman_and_tile_for_ssim():
    gen = _gen(3)
    x = torch.rand(2, 3, 32, 32, generator=gen)
    z = transform.wavedec(x, 2, "haar", 3, "reflect")
    noisy = transform.wavedec(x + 0.3 * torch.randn(x.shape, generator=gen), 2, "haar", 3, "reflect")
    za, zb = maps.reduce(z, x), maps.reduce(noisy, x)  # per-band lists [B, *band]
    flat_a = torch.cat([band.sum(1).flatten(1) for band in transform.bands(z)], 1)
    flat_b = torch.cat([band.sum(1).flatten(1) for band in transform.bands(noisy)], 1)
    assert torch.equal(maps.flatten(za), flat_a)
    assert torch.allclose(similarity.spearman(za, zb), similarity.rank_correlation(flat_a.abs(), flat_b.abs()))
    tiled_a, tiled_b = transform.tile(za, 2, (32, 32)), transform.tile(zb, 2, (32, 32))
    assert torch.allclose(similarity.ssim(za, zb), similarity.ssim(tiled_a, tiled_b))
    assert torch.allclose(similarity.ssim(za, [5 * b for b in za]), torch.ones(2), atol=1e-6)
    with pytest.raises(ValueError, match="a"):  # bands with a channel axis: reduce them first
        similarity.ssim(z, z)


def test_reduce_sums_channels_of_pixel_maps_and_bands():
    gen = _gen(4)
    x = torch.rand(2, 3, 16, 16, generator=gen)
    assert torch.allclose(maps.reduce(x, x), x.sum(1))
    assert torch.equal(maps.reduce(x[:, 0], x), x[:, 0])
    wave = torch.rand(2, 64, generator=gen)  # [B, T]: bands [B, n] stay, [B, 1, n] lose the channel
    bands = transform.bands(transform.wavedec(wave[:, None], 1, "haar", 2, "reflect"))
    assert [tuple(b.shape) for b in maps.reduce(bands, wave)] == [(2, 16), (2, 16), (2, 32)]
    assert maps.image(maps.reduce(bands, wave)).shape == (2, 64)
    with pytest.raises(ValueError, match="attribution"):
        maps.reduce(torch.rand(2, 5, 5), x)
    with pytest.raises(ValueError, match="attribution"):
        maps.reduce([torch.rand(2, 3, 4, 4, 4)], x)


def test_batch_invariance():
    gen = _gen(5)
    a, b = torch.randn(16, 20, 20, generator=gen), torch.randn(16, 20, 20, generator=gen)
    whole = similarity.similarities(a, b)
    for i in range(16):
        alone = similarity.similarities(a[i : i + 1], b[i : i + 1])
        for key in ("spearman", "ssim"):
            assert abs(float(whole[key][i] - alone[key][0])) <= 1e-6


def test_reference_prepared_once_equals_pairwise():
    gen = _gen(6)
    a = torch.randn(3, 12, 12, generator=gen)
    ref = similarity.Reference(a)
    for _ in range(2):
        b = torch.randn(3, 12, 12, generator=gen)
        for key, value in ref(b).items():
            assert torch.equal(value, similarity.similarities(a, b)[key])


def test_errors_name_the_argument():
    a = torch.rand(2, 10, 10)
    with pytest.raises(ValueError, match="a, b"):
        similarity.similarities(a, torch.rand(2, 10, 11))
    with pytest.raises(ValueError, match="a"):
        similarity.ssim(torch.rand(2, 5, 10), torch.rand(2, 5, 10))
    with pytest.raises(ValueError, match="measures"):
        similarity.similarities(a, a, ("pearson",))
    with pytest.raises(ValueError, match="measures"):
        similarity.similarities(a, a, "spearman")
    with pytest.raises(ValueError, match="b"):
        similarity.spearman(a, torch.full((2, 10, 10), float("nan")))
    with pytest.raises(ValueError, match="u, v"):
        similarity.rank_correlation(torch.rand(2, 3), torch.rand(2, 4))
    with pytest.raises(ValueError, match="attribution"):
        maps.flatten("not a map")
    with pytest.raises(ValueError, match="attribution"):
        maps.image([torch.rand(2, 4, 4), torch.rand(2, 4, 4)])  # not approximation + 3 details per level
