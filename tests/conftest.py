"""Shared fixtures: seeded tiny models and inputs for 1D (audio), 2D (images) and 3D (volumes).

No test downloads anything: ``HF_HUB_OFFLINE=1`` is set before timm or huggingface_hub is imported.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

from tests import models  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))



def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` are skipped (with ``pytest.mark.skipif``) where CUDA is not available."""
    needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(needs_cuda)


@pytest.fixture
def image_model():
    return models.image_model()


@pytest.fixture
def image_batch():
    gen = torch.Generator().manual_seed(10)
    x = torch.rand(3, 3, models.IMAGE_SIZE, models.IMAGE_SIZE, generator=gen)
    return x, torch.tensor([0, 1, 2])


@pytest.fixture
def audio_model():
    return models.tiny_audio_model()


@pytest.fixture
def audio_batch():
    gen = torch.Generator().manual_seed(11)
    t = torch.arange(models.AUDIO_LENGTH) / models.AUDIO_RATE
    tones = torch.stack([torch.sin(2 * torch.pi * f * t) for f in (440.0, 1000.0)])
    x = 0.5 * tones + 0.05 * torch.randn(2, models.AUDIO_LENGTH, generator=gen)
    return x, torch.tensor([0, 3])


@pytest.fixture
def volume_model():
    return models.volume_model()


@pytest.fixture
def volume_batch():
    gen = torch.Generator().manual_seed(12)
    s = models.VOLUME_SIZE
    return torch.rand(2, 1, s, s, s, generator=gen), torch.tensor([0, 2])
