"""Integrated Gradients on a trained audio model is Integrated Gradients: along the straight path from
silence, the attributions sum to ``f(x) - f(0)`` within 5 % (n = 64), for WAM-IG on the waveform's wavelet
coefficients and for the pixel IG baseline on the log-mel. The front-end's additive decibel floor keeps the
model sensitive to the clip's level; with the old per-batch ``top_db`` clamp and median noise floor the model
was scale-invariant and the attributions summed to 0 (the default run's ``tables/completeness`` gives the
same check on the offline set's evaluated clips).

The model is the registry's ``audio_resnet`` (front-end and network), trained here in seconds on tones
(a 0.25 s clip holds a 440 Hz or a 2 kHz tone burst at a random time, over noise, at a random level)."""

from __future__ import annotations

import torch

from workflow.lib import attribution as explain
from workflow.lib import training as T
from workflow.lib.config import Config
from workflow.lib.data.base import Split
from workflow.lib.models import zoo as M

RATE, LENGTH = 44100, 11025


def _tones(n: int, seed: int) -> Split:
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    t = torch.arange(LENGTH) / RATE
    x = 0.01 * torch.randn(n, LENGTH, generator=gen)
    for i in range(n):
        start = int(torch.randint(0, LENGTH // 2, (1,), generator=gen))
        burst = (t >= start / RATE) & (t < start / RATE + 0.1)
        x[i] += torch.sin(2 * torch.pi * (440.0 if y[i] == 0 else 2000.0) * t) * burst
    x = x / x.abs().amax(1, keepdim=True) * (0.5 + 0.5 * torch.rand(n, 1, generator=gen))
    return Split(x, y, [f"c{i}" for i in range(n)], 2, ["low", "high"])


def test_integrated_gradients_is_complete_on_a_trained_audio_model(tmp_path):
    torch.manual_seed(0)
    model = M.build("audio_resnet", 2)
    metrics = T.train(model, _tones(32, 0), _tones(8, 1), _tones(8, 2),
                      {"epochs": 8, "patience": 8, "lr": 0.01, "batch_size": 8, "seed": 0}, tmp_path)
    assert metrics["test_accuracy"] == 1.0  # trained, not random
    config = Config.from_dict({
        "seed": 42, "datasets": {"audio": {"modality": "audio"}}, "evaluation": {"batch_size": 32},
        "wavelet": {"audio": {"wavelet": "haar", "levels": 3, "mode": "reflect"}},
        "methods": {"wam_ig": {"kind": "wam", "label": "WAM-IG", "options": {"method": "integrated", "n_samples": 64}},
                    "integrated_gradients": {"kind": "baseline", "label": "IG", "options": {"n_steps": 64}}}})
    test = _tones(4, 3)
    for method in config.methods:
        c = explain.explain(config, "audio", model, method, test.x, test.y)["completeness"]
        assert (c["delta"].abs() > 0.1).all()  # the path from silence changes the logit
        error = (c["attribution_sum"] - c["delta"]).abs() / c["delta"].abs()
        assert (error <= 0.05).all(), (method, error)
