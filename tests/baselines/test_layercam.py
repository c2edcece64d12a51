"""LayerCAM's known answer: GradCAM's map where the gradients are constant and positive. The equivalence of our
CAMs with pytorch-grad-cam on pretrained-size networks: ``tests/workflow/lib/test_zoo_explained.py``; token models
(ViT, Swin, 3D ViT): ``tests/baselines/test_cam_resolver.py``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import baselines

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


class ConvGAP(nn.Module):
    """``x -> A = conv(x) -> mean over positions -> W A``: ``d f_c / d A_k = W_ck / N`` at every position."""

    def __init__(self, dims: int, positive_head: bool) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(dims)
        self.conv = CONV[dims](2, 4, 3, padding=1)
        self.head = nn.Linear(4, 3)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=gen))
            head = torch.rand(3, 4, generator=gen) + 0.1
            self.head.weight.copy_(head if positive_head else head - 0.6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).flatten(2).mean(2))


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_layercam_equals_gradcam_when_the_gradients_are_constant_and_positive(dims):
    """Positive head weights: ``g_k = W_yk / N > 0`` at every position, so LayerCAM's ``ReLU(g_k)`` is Grad-CAM's
    ``mean_s(g_k)``; with mixed signs the two differ (LayerCAM drops the negative channels)."""
    x = torch.randn(2, 2, *[6] * dims, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 2])
    model = ConvGAP(dims, positive_head=True).eval()
    layercam = baselines.get("layercam", model, layer="conv")(x, y)
    torch.testing.assert_close(layercam, baselines.get("gradcam", model, layer="conv")(x, y), rtol=1e-5, atol=1e-7)
    assert (layercam > 0).any() and (layercam == 0).any()
    mixed = ConvGAP(dims, positive_head=False).eval()
    assert not torch.allclose(baselines.get("layercam", mixed, layer="conv")(x, y),
                              baselines.get("gradcam", mixed, layer="conv")(x, y))
