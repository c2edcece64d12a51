"""The two named evaluation protocols: where an input is perturbed and how, per modality and domain.

Both perturb the data in its own space: images in unnormalised RGB in [0, 1] (the model's normalisation is
applied after the perturbation, as ``preprocess``), audio as the log-mel in decibels (pixel domain) or the
waveform's wavelet coefficients (wavelet domain), volumes as voxels in [0, 1].

- ``reference``: the perturbations of the reference evaluators (``gabrielkasmi/wam``, ``src/evaluators.py``
  and ``src/evaluation_helpers.py``), so that a difference from the published Table 1 comes from data and
  models, not from the protocol. Removed pixels and voxels are black (``mask x image``), removed
  coefficients zero, removed log-mel bins 0 dB (``mask x dB``); a perturbed image is min-max rescaled to
  uint8 (:func:`minmax_uint8`; an all-black image stays black); in the images' wavelet domain each level's
  horizontal-detail map masks the vertical details and vice versa (``swap_hv``: the reference tiles its map
  with the horizontal details top-right, then applies it to ``pywt.coeffs_to_array``, whose top-right block
  holds the vertical details); audio in the wavelet domain is the
  waveform divided by its maximum, masked, rebuilt and divided by its maximum again (:func:`peak_normalize`);
  features are ranked as ``np.argsort(map)[::-1]`` (ties: higher index first) and each step perturbs
  ``int(N / steps)`` more features, the last point all of them.
- ``clean``: the same data spaces without the quirks: no rescale, no peak normalisation, removed log-mel bins
  at the clip's own silence level (its minimum in dB), ties in a seeded random order, ``(k N) // steps``
  features at point ``k``.

How a wavelet-domain map is aggregated before ranking is separate (:func:`rank_maps`): the reference ranks the
2D wavelet domain by the per-band normalised map and the 1D one by raw ``|grads|`` (:func:`reference_ranking`).

Example::

    >>> import metrics, torch
    >>> from metrics import protocols
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    >>> x, y, a = torch.rand(2, 3, 8, 8), torch.tensor([0, 1]), torch.rand(2, 8, 8)
    >>> x_in, options = protocols.setup("reference", "images", "pixel", x)
    >>> sorted(options)
    ['baseline', 'counts', 'postprocess', 'seed', 'tie_break']
    >>> metrics.deletion(model, x_in, y, a, domain="pixel", steps=4, **options).probs.shape
    torch.Size([2, 5])
"""

from __future__ import annotations

from typing import Any

import torch

from metrics.perturbation import check_choice

PROTOCOLS = ("reference", "clean")
MODALITIES = ("images", "audio", "volumes")
RANKINGS = ("per_band", "raw")


def _per_sample(x: torch.Tensor, fn) -> torch.Tensor:
    flat = x.flatten(1)
    return fn(flat).view(-1, *[1] * (x.dim() - 1))


def minmax_uint8(x: torch.Tensor) -> torch.Tensor:
    """Each sample ``[B, ...]`` min-max rescaled to [0, 1] and rounded down to 1/255 (the reference's
    ``(normalize_data(img) * 255).astype(np.uint8)`` then ``ToTensor``). A constant sample (an all-black
    image, whose rescale is 0/0) becomes black."""
    low, high = _per_sample(x, lambda f: f.amin(1)), _per_sample(x, lambda f: f.amax(1))
    span = high - low
    scaled = (x - low) / torch.where(span > 0, span, torch.ones_like(span))
    return torch.where(span > 0, torch.floor(scaled * 255).clamp(0, 255) / 255, torch.zeros_like(x))


def peak_normalize(x: torch.Tensor) -> torch.Tensor:
    """Each sample divided by its maximum (the reference's ``wf / wf.max()``); a sample whose maximum is not
    positive (silence) becomes zero."""
    peak = _per_sample(x, lambda f: f.amax(1))
    return torch.where(peak > 0, x / torch.where(peak > 0, peak, torch.ones_like(peak)), torch.zeros_like(x))


def setup(protocol: str, modality: str, domain: str, x: torch.Tensor, seed: int = 0
          ) -> tuple[torch.Tensor, dict[str, Any]]:
    """The input to perturb and the options of :func:`metrics.perturbation.curve_scores` for ``protocol``.

    ``x``: images ``[B, 3, H, W]`` unnormalised in [0, 1]; audio pixel domain the log-mel ``[B, 1, M, T]``
    in dB, wavelet domain the waveform ``[B, T]``; volumes ``[B, 1, D, H, W]`` in [0, 1]. Returns ``x`` (audio
    wavelet domain under ``reference``: divided by its maximum) and ``tie_break``, ``seed``, ``counts``,
    ``postprocess`` and, in the pixel domain, ``baseline`` (images' wavelet domain under ``reference``:
    ``swap_hv``).
    """
    check_choice(protocol, PROTOCOLS, "protocol")
    check_choice(modality, MODALITIES, "modality")
    check_choice(domain, ("pixel", "wavelet"), "domain")
    reference = protocol == "reference"
    options: dict[str, Any] = {"tie_break": "reverse" if reference else "random", "seed": seed,
                               "counts": "floor" if reference else "exact", "postprocess": None}
    if modality == "images" and reference:
        options["postprocess"] = minmax_uint8
        if domain == "wavelet":
            options["swap_hv"] = True
    if modality == "audio" and domain == "wavelet" and reference:
        x, options["postprocess"] = peak_normalize(x), peak_normalize
    if domain == "pixel":
        silence = modality == "audio" and not reference
        options["baseline"] = _per_sample(x, lambda f: f.amin(1)) if silence else 0.0
    return x, options


def reference_ranking(modality: str, domain: str) -> str:
    """How the reference evaluators aggregate a wavelet-domain map before ranking it: raw ``|grads|`` in 1D
    (audio), the per-band normalised map in 2D (images; volumes follow 2D); ``"-"`` in the pixel domain."""
    check_choice(modality, MODALITIES, "modality")
    if domain == "pixel":
        return "-"
    return "raw" if modality == "audio" else "per_band"


def rank_maps(bands: list[torch.Tensor], ranking: str) -> list[torch.Tensor]:
    """Per-band importance ``[B, 1, *band]`` (raw magnitudes) aggregated for ranking: ``"raw"`` as they are,
    ``"per_band"`` each band divided by its per-sample maximum (a zero band stays zero)."""
    check_choice(ranking, RANKINGS, "ranking")
    if ranking == "raw":
        return bands
    return [peak_normalize(b) for b in bands]
