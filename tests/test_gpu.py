"""On a CUDA device, WAM, the baselines and the metrics give what they give on the CPU (skipped without CUDA)."""

from __future__ import annotations

import pytest
import torch

import baselines
import metrics
from wam import WAM


@pytest.mark.gpu
def test_wam_baselines_and_metrics_on_cuda_match_the_cpu(image_model, image_batch):
    x, y = image_batch
    cuda = torch.device("cuda")
    model_gpu = image_model.to(cuda)
    # the noise generator lives on the input's device, so compare the deterministic variants
    for method in ("gradient", "integrated"):
        cpu = WAM(image_model.cpu(), method=method, n_samples=5)(x, y).dyadic()
        gpu = WAM(model_gpu.to(cuda), method=method, n_samples=5)(x.to(cuda), y.to(cuda)).dyadic()
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-3, atol=1e-4)
    for name in ("saliency", "integrated_gradients", "gradcam"):
        cpu = baselines.get(name, image_model.cpu())(x, y)
        gpu = baselines.get(name, image_model.to(cuda))(x.to(cuda), y.to(cuda))
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-3, atol=1e-4)
    attribution = torch.rand(x.shape[0], *x.shape[2:])
    cpu = metrics.deletion(image_model.cpu(), x, y, attribution, steps=16).probs
    gpu = metrics.deletion(image_model.to(cuda), x.to(cuda), y.to(cuda), attribution.to(cuda), steps=16).probs
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-3, atol=1e-4)
