"""Adversarial training and attacks of the ``robustness`` target (inputs in [0, 1], an L-inf budget ``epsilon``).

Training kinds (``robustness.models.<name>.training``):

- ``erm``: empirical risk minimisation, ART ``PyTorchClassifier.fit``;
- ``madry``: PGD adversarial training (Madry et al., 2018), ART ``AdversarialTrainerMadryPGD`` (every training
  example replaced by its PGD example: ``steps`` steps of ``step_size`` from a random start);
- ``fast``: FGSM with a random start, "fast is better than free" (Wong et al., 2020), ART
  ``AdversarialTrainerFBFPyTorch`` (its cyclic learning rate, rescaled to peak at ``lr``, and its gradient clipping
  at norm 0.5);
- ``free``: free adversarial training with minibatch replay (Shafahi et al., 2019), :func:`free_training`,
  written here: ART has no free trainer.

Every kind uses Adam at ``lr`` (FBF follows its schedule up to ``lr``). Free training replays each minibatch
``replay`` times and makes ``ceil(epochs / replay)`` passes, so that it takes as many optimiser steps as ``epochs``
epochs of the others (Shafahi et al.'s equal-cost setting). :func:`pgd` attacks with ART's PGD.

Example::

    >>> from workflow.lib.models.robust import TextureCNN
    >>> model = TextureCNN(n_classes=2, width=4)
    >>> x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 0, 1])
    >>> _ = free_training(model, torch.optim.Adam(model.parameters()), x, y, epsilon=0.03, replay=2, epochs=2,
    ...                   batch_size=2, generator=torch.Generator().manual_seed(0))
    >>> pgd(model, x, y, 2, epsilon=0.03, step_size=0.01, steps=2, batch_size=4, seed=0).shape
    torch.Size([4, 1, 8, 8])
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

KINDS = ("erm", "madry", "fast", "free")
FBF_PEAK_LR = 0.21  # the peak of ART's FBF learning-rate schedule (adversarial_trainer_fbf_pytorch.py)


def art_classifier(model: nn.Module, n_classes: int, input_shape: tuple[int, ...], lr: float,
                   device: torch.device):
    """ART ``PyTorchClassifier`` around ``model`` (inputs clipped to [0, 1], cross-entropy, Adam at ``lr``)."""
    from art.estimators.classification import PyTorchClassifier

    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    return PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=tuple(input_shape),
                             nb_classes=n_classes, optimizer=optimizer, clip_values=(0.0, 1.0),
                             device_type="gpu" if device.type == "cuda" else "cpu")



def free_training(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, *,
                  epsilon: float, replay: int, epochs: int, batch_size: int, generator: torch.Generator
                  ) -> torch.Tensor:
    """Free adversarial training (Shafahi et al., 2019, Algorithm 1), in place.

    One perturbation ``delta`` ``[batch_size, *x.shape[1:]]`` lives across minibatches. Each minibatch
    ``(x_b, y_b)`` is replayed ``replay`` times; each replay takes one optimiser step on
    ``cross_entropy(model(clip(x_b + delta)), y_b)`` and, from the same backward pass, updates
    ``delta <- clip(delta + epsilon * sign(d loss / d delta), -epsilon, epsilon)``. ``ceil(epochs / replay)``
    passes over ``x`` (shuffled with ``generator``), so the number of optimiser steps matches ``epochs`` epochs of
    plain training. Inputs are clipped to [0, 1]. With ``epsilon = 0`` and ``replay = 1`` it is plain training.
    Returns the final ``delta``; the model is left in eval mode.
    """
    if replay < 1 or epsilon < 0:
        raise ValueError(f"replay, epsilon: expected replay >= 1 and epsilon >= 0, got {replay!r}, {epsilon!r}")
    device = next(model.parameters()).device
    delta = torch.zeros(batch_size, *x.shape[1:], device=device)
    model.train()
    for _ in tqdm(range(math.ceil(epochs / replay)), desc="free training passes", leave=False):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            xb, yb = x[idx].to(device), y[idx].to(device)
            for _ in range(replay):
                d = delta[:len(idx)].clone().requires_grad_(True)
                loss = F.cross_entropy(model((xb + d).clamp(0, 1)), yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                delta[:len(idx)] = (d.detach() + epsilon * d.grad.sign()).clamp(-epsilon, epsilon)
    model.eval()
    return delta



def _fbf_trainer(classifier, epsilon: float, lr: float):
    """ART's ``AdversarialTrainerFBFPyTorch`` with its cyclic learning rate (0 -> peak at 2/5 of the epochs -> 0)
    rescaled to peak at ``lr`` instead of the CIFAR SGD value 0.21 it hard-codes (with that peak and SGD, momentum
    0.9, the texture CNN stalled: chance with BatchNorm, 37 % test accuracy with GroupNorm after 6 epochs);
    everything else is ART's."""
    from art.defences.trainer import AdversarialTrainerFBFPyTorch

    class Trainer(AdversarialTrainerFBFPyTorch):
        def _batch_process(self, x_batch, y_batch, l_r):
            return super()._batch_process(x_batch, y_batch, l_r * lr / FBF_PEAK_LR)

    return Trainer(classifier, eps=epsilon)



def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, n_classes: int, kind: str, *, epsilon: float,
          step_size: float, steps: int, epochs: int, batch_size: int, lr: float, seed: int, replay: int = 4,
          device: torch.device | str = "cpu", key: str = "training") -> nn.Module:
    """Train ``model`` on ``x`` ``[N, C, H, W]`` in [0, 1], ``y`` ``[N]`` with training ``kind`` (``KINDS``).

    ``epsilon`` (L-inf), ``step_size`` and ``steps`` are the adversary's (Madry PGD; FBF and free use ``epsilon``);
    ``key`` names the config entry in errors. Seeded (torch, numpy: ART draws from numpy's global generator).
    Returns the model in eval mode.
    """
    if kind not in KINDS:
        raise ValueError(f"{key}: unknown training kind {kind!r}; expected one of {KINDS}")
    if epsilon < 0:
        raise ValueError(f"{key}: epsilon must be >= 0, got {epsilon!r}")
    device = torch.device(device)
    torch.manual_seed(seed)
    np.random.seed(seed)
    model.to(device)
    if kind == "free":
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        free_training(model, optimizer, x, y, epsilon=epsilon, replay=replay, epochs=epochs, batch_size=batch_size,
                      generator=torch.Generator().manual_seed(seed))
        return model.eval()
    classifier = art_classifier(model, n_classes, tuple(x.shape[1:]), lr, device)
    xn, yn = x.numpy().astype(np.float32), np.eye(n_classes, dtype=np.float32)[y.numpy()]  # ART's FBF needs one-hot
    if kind == "erm":
        classifier.fit(xn, yn, batch_size=batch_size, nb_epochs=epochs)
    elif kind == "madry":
        from art.defences.trainer import AdversarialTrainerMadryPGD

        AdversarialTrainerMadryPGD(classifier, nb_epochs=epochs, batch_size=batch_size, eps=epsilon,
                                   eps_step=step_size, max_iter=steps).fit(xn, yn)
    else:
        _fbf_trainer(classifier, epsilon, lr).fit(xn, yn, batch_size=batch_size, nb_epochs=epochs)
    return model.eval()



def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, n_classes: int, *, epsilon: float, step_size: float,
        steps: int, batch_size: int, seed: int, random_init: bool = True) -> torch.Tensor:
    """L-inf PGD examples ``[N, ...]`` (CPU) with ART ``ProjectedGradientDescentPyTorch`` (untargeted, inputs in
    [0, 1], one random start inside the ball when ``random_init``; seeded)."""
    from art.attacks.evasion import ProjectedGradientDescentPyTorch

    if epsilon < 0:
        raise ValueError(f"epsilon: must be >= 0, got {epsilon!r}")
    device = next(model.parameters()).device
    np.random.seed(seed)
    torch.manual_seed(seed)
    classifier = art_classifier(model, n_classes, tuple(x.shape[1:]), 0.0, device)
    attack = ProjectedGradientDescentPyTorch(classifier, norm=np.inf, eps=epsilon, eps_step=step_size,
                                             max_iter=steps, num_random_init=int(random_init),
                                             batch_size=batch_size, verbose=False)
    adv = attack.generate(x.numpy().astype(np.float32), y=y.numpy())
    model.eval()
    return torch.from_numpy(adv)

