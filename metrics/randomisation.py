"""Randomisation sanity checks: model-parameter randomisation (MPRT), eMPRT, Random Logit, data randomisation.

An attribution method that explains the *model* must change when the model does. Each check recomputes a map
with something randomised and measures its similarity to the original map (:mod:`metrics.similarity`:
Spearman of ``|map|`` and SSIM, per sample); low similarity after randomisation is good.

- :func:`mprt` (Adebayo et al., 2018): re-initialise the model's blocks from the output backwards, cumulatively
  (``order="cascading"``) or one at a time (``"independent"``), recompute the map after each step.
- :func:`emprt` (Hedstroem et al., 2023): ratio of the map's complexity (:func:`metrics.complexity.entropy`)
  after full randomisation to before; higher (more complex, noisier maps of a random model) is good.
- :func:`random_logit` (Sixt et al., 2020): the map of the true class against the map of a random other class.
- :func:`data_randomisation` (Adebayo et al., 2018, section 4): the maps of a model and of the same architecture
  trained on shuffled labels (the workflow trains it): the same similarities, on two given maps.

Explain functions are ``explain(model, x, y) -> map``: ``x`` as given to the check (``[B, C, *spatial]`` or
``[B, T]``), ``y`` ``[B]`` long class indices; the map is an attribution of ``x``'s shape, a ``[B, *spatial]`` map
or a wavelet per-band list / ptwt structure; channels are summed (:func:`metrics.maps.reduce`).

Re-initialisation: a *block* is a submodule named by its dotted path (``"head"``, ``"layer4.1"``); re-initialising
it calls ``reset_parameters()`` of every submodule that has one (each layer's own initialiser; buffers such as
batch-norm statistics are reset with them), in ``module.modules()`` order, then permutes the values of every
parameter that no initialiser owns (:func:`unowned_parameters`: a ViT's class token and position embeddings, a
ConvNeXt's layer scales; a permutation keeps their distribution and removes what training put where), with the
CPU generator (and the CUDA generators of the block's devices) seeded by the block's seed inside
``torch.random.fork_rng()``: the caller's random state is untouched. When the blocks hold every layer that has an
initialiser (the default blocks do), the unowned parameters outside every block (a timm ViT's ``cls_token`` and
``pos_embed`` sit on the model itself) are permuted with the last, input-side block, so that the full cascade
leaves no trained parameter; blocks that leave layers out leave those parameters untouched too. The seed of block
``k`` is derived from ``(seed, k)`` (:func:`derive_seed`), or given per block. Every check works on a deep copy:
the caller's model is never modified.

Example::

    >>> import torch, metrics
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 5))
    >>> def saliency(m, x, y):
    ...     x = x.clone().requires_grad_(True)
    ...     return torch.autograd.grad(m(x).gather(1, y[:, None]).sum(), x)[0]
    >>> x, y = torch.rand(2, 3, 8, 8), torch.tensor([0, 3])
    >>> r = metrics.get("mprt")(model, x, y, saliency, seed=0)
    >>> r.randomised                                       # default blocks: output first
    [(), ('3',), ('3', '0')]
    >>> r.similarity["spearman"].shape, bool((r.similarity["spearman"][0] > 0.9999).all())
    (torch.Size([3, 2]), True)
    >>> metrics.get("emprt")(model, x, y, saliency).shape
    torch.Size([2])
    >>> sorted(metrics.get("random_logit")(model, x, y, saliency, seed=1))
    ['degenerate', 'spearman', 'ssim']
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from metrics import maps
from metrics.complexity import entropy
from metrics.curves import Targets
from metrics.perturbation import as_batch, check_choice
from metrics.registry import register
from metrics.similarity import SIMILARITIES, Reference, check_measures, similarities
from wam.utils import as_targets, check_targets_range

ORDERS = ("cascading", "independent")
Explain = Callable[[nn.Module, torch.Tensor, torch.Tensor], maps.Map]


def check_seed(seed: Any, name: str = "seed") -> int:
    """``seed`` as an int >= 0 (``ValueError`` naming ``name`` otherwise)."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"{name}: expected an integer >= 0, got {seed!r}")
    return int(seed)


def derive_seed(seed: int, index: int) -> int:
    """A 32-bit seed derived from ``(seed, index)``, both integers >= 0 (``numpy.random.SeedSequence``: distinct
    pairs give unrelated streams)."""
    pair = [check_seed(seed), check_seed(index, "index")]
    return int(np.random.SeedSequence(pair).generate_state(1)[0])


def resettable(module: nn.Module) -> list[nn.Module]:
    """The submodules of ``module`` (itself included) that have ``reset_parameters()``, in ``modules()`` order."""
    return [m for m in module.modules() if callable(getattr(m, "reset_parameters", None))]


def unowned_parameters(module: nn.Module, outside: Sequence[nn.Module] = ()) -> list[nn.Parameter]:
    """The parameters of ``module`` that no ``reset_parameters()`` re-draws: those held directly by a submodule
    without one (itself included), except inside the submodules ``outside``, in ``named_parameters()`` order.

    >>> from torch import nn
    >>> class Tokens(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.cls_token, self.head = nn.Parameter(torch.zeros(1, 4)), nn.Linear(4, 2)
    >>> [tuple(p.shape) for p in unowned_parameters(Tokens())]
    [(1, 4)]
    """
    skipped = {id(m) for block in outside for m in block.modules()}
    return [p for m in module.modules() if id(m) not in skipped and not callable(getattr(m, "reset_parameters", None))
            for p in m.parameters(recurse=False)]


def default_blocks(model: nn.Module) -> list[str]:
    """The model's top-level children that hold re-initialisable layers, output side first.

    Children are taken in the order the model registers them (input to output for torchvision, timm and
    ``nn.Sequential`` models), reversed. A wrapper whose only such child is one module (e.g. a normalisation
    wrapper, an audio model's classifier behind a parameter-free front end) is looked through: that child's
    children are the blocks (dotted names). A model without such children is one block, ``""``.

    >>> from torch import nn
    >>> default_blocks(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(72, 3)))
    ['3', '0']
    >>> default_blocks(nn.Sequential(nn.Identity(), nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))))
    ['1.1', '1.0']
    """
    prefix, module = "", model
    while True:
        children = [(name, child) for name, child in module.named_children() if resettable(child)]
        if len(children) != 1:
            break
        prefix, module = f"{prefix}{children[0][0]}.", children[0][1]
    if not children:
        return [prefix[:-1]]
    return [prefix + name for name, _ in reversed(children)]


@contextmanager
def _seeded(seed: int, module: nn.Module) -> Iterator[None]:
    """Within the block, the CPU generator and the CUDA generators of ``module``'s devices start from ``seed``;
    all of them are restored afterwards."""
    devices = sorted({p.device.index or 0 for p in module.parameters() if p.is_cuda})
    with torch.random.fork_rng(devices=devices):
        torch.default_generator.manual_seed(seed)
        for d in devices:
            with torch.cuda.device(d):
                torch.cuda.manual_seed(seed)
        yield


def reinitialise(module: nn.Module, seed: int, also: Sequence[nn.Parameter] = ()) -> None:
    """Re-draw ``module``'s parameters in place with each layer's own initialiser (``reset_parameters()`` of every
    submodule that has one) and permute the values of its :func:`unowned_parameters` and of ``also``, seeded with
    ``seed``; the caller's random state is untouched."""
    layers = resettable(module)
    if not layers:
        raise ValueError(f"blocks: {type(module).__name__} has no submodule with reset_parameters()")
    with _seeded(seed, module), torch.no_grad():
        for layer in layers:
            layer.reset_parameters()
        for parameter in [*unowned_parameters(module), *also]:
            order = torch.randperm(parameter.numel(), device=parameter.device)
            parameter.copy_(parameter.flatten()[order].view_as(parameter))


def _plan(model: nn.Module, blocks: Sequence[str] | None, seed: int | Sequence[int]) -> tuple[list[str], list[int]]:
    """Checked block names and one seed per block."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    names = default_blocks(model) if blocks is None else blocks
    if isinstance(names, str) or not isinstance(names, Sequence) or not names:
        raise ValueError(f"blocks: expected a non-empty sequence of dotted module names, got {blocks!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"blocks: names repeat: {list(names)}")
    for name in names:
        try:
            block = model.get_submodule(name)
        except (AttributeError, TypeError):
            raise ValueError(f"blocks: the model has no submodule {name!r}") from None
        if not resettable(block):
            raise ValueError(f"blocks: {name!r} has no submodule with reset_parameters()")
    if isinstance(seed, Sequence):
        if len(seed) != len(names):
            raise ValueError(f"seed: expected one seed per block ({len(names)}), got {len(seed)}")
        seeds = [check_seed(s) for s in seed]
    else:
        seeds = [derive_seed(seed, k) for k in range(len(names))]
    return list(names), seeds


def randomised_models(model: nn.Module, blocks: Sequence[str] | None = None, seed: int | Sequence[int] = 0,
                      order: str = "cascading") -> Iterator[nn.Module]:
    """The randomised models of :func:`mprt`, one per block: a single deep copy of ``model``, yielded after each
    block's re-initialisation, cumulative (``"cascading"``) or with the previous block restored first
    (``"independent"``). Arguments as :func:`mprt`; copy a yielded model to keep it past the next step.

    ``randomise(model, blocks, seed)`` is the last cascading one.
    """
    check_choice(order, ORDERS, "order")
    names, seeds = _plan(model, blocks, seed)
    randomised = copy.deepcopy(model)
    # blocks that hold every initialised layer: the unowned parameters outside them go with the input-side block
    chosen = [randomised.get_submodule(name) for name in names]
    inside = {id(m) for block in chosen for m in block.modules()}
    whole = all(id(layer) in inside for layer in resettable(randomised))
    outside = unowned_parameters(randomised, chosen) if whole else []
    for k, name in enumerate(names):
        if order == "independent" and k:
            previous = names[k - 1]
            randomised.get_submodule(previous).load_state_dict(model.get_submodule(previous).state_dict())
        # the outside parameters are re-drawn at the last step only: no later step restores them
        reinitialise(randomised.get_submodule(name), seeds[k], outside if k == len(names) - 1 else ())
        yield randomised


def randomise(model: nn.Module, blocks: Sequence[str] | None = None, seed: int | Sequence[int] = 0) -> nn.Module:
    """A deep copy of ``model`` with every block re-initialised (the end of :func:`mprt`'s cascade, same seeds).

    ``blocks``: dotted module names (default :func:`default_blocks`); ``seed``: an int (block ``k`` gets
    ``derive_seed(seed, k)``) or one seed per block.
    """
    *_, randomised = randomised_models(model, blocks, seed)  # one copy, every block re-initialised
    return randomised


def _map(explain: Explain, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> maps.Map:
    if not callable(explain):
        raise ValueError(f"explain: expected a function explain(model, x, y) -> map, got {type(explain).__name__}")
    return maps.reduce(explain(model, x, y), x, name="explain(model, x, y)")


@dataclass(frozen=True)
class Randomisation:
    """Result of :func:`mprt`.

    ``randomised``: per step, the blocks re-initialised at that step's model (step 0: ``()``, the original model;
    cascading: every block so far; independent: one). ``similarity``: per measure, ``[steps + 1, B]`` float32
    similarities to the original map (step 0: 1); ``"degenerate"`` ``[steps + 1, B]`` bool: one of the two maps
    was constant (Spearman undefined, returned as 0).
    """

    order: str
    randomised: list[tuple[str, ...]]
    similarity: dict[str, torch.Tensor]


@register("mprt")
def mprt(model: nn.Module, x: torch.Tensor, y: Targets, explain: Explain, *, blocks: Sequence[str] | None = None,
         order: str = "cascading", seed: int | Sequence[int] = 0,
         measures: Sequence[str] = SIMILARITIES) -> Randomisation:
    """Model-parameter randomisation test (cascading or independent) of ``explain`` on inputs ``x``.

    ``x`` ``[B, C, *spatial]`` (1 to 3 spatial dims) or ``[B, T]``; ``y`` ``[B]`` class indices (or one int);
    ``explain(model, x, y) -> map`` (module docstring). ``blocks``: dotted names, output side first (default
    :func:`default_blocks`); ``order``: ``"cascading"`` (step ``k`` re-initialises blocks ``1..k``) or
    ``"independent"`` (only block ``k``); ``seed``: an int (block ``k``'s seed is ``derive_seed(seed, k)``, the
    same in both orders) or one seed per block; ``measures``: from ``("spearman", "ssim")``. Calls ``explain``
    ``len(blocks) + 1`` times; never modifies ``model``. Returns a :class:`Randomisation`.
    """
    check_choice(order, ORDERS, "order")
    measures = check_measures(measures)
    names, _ = _plan(model, blocks, seed)
    x4, _ = as_batch(x)
    targets = as_targets(y, x4.shape[0], x4.device)
    original = _map(explain, model, x, targets)
    compare = Reference(original, measures)
    scores = [compare(original)]
    randomised: list[tuple[str, ...]] = [()]
    for k, random_model in enumerate(randomised_models(model, names, seed, order)):
        scores.append(compare(_map(explain, random_model, x, targets)))
        randomised.append(tuple(names[: k + 1]) if order == "cascading" else (names[k],))
    return Randomisation(order, randomised, {key: torch.stack([s[key] for s in scores]) for key in scores[0]})


@register("emprt")
def emprt(model: nn.Module, x: torch.Tensor, y: Targets, explain: Explain, *,
          blocks: Sequence[str] | None = None, seed: int | Sequence[int] = 0) -> torch.Tensor:
    """Efficient MPRT ``[B]`` (float32): ``H(map of the fully randomised model) / H(map of the model)``, ``H`` the
    entropy of ``|map| / sum |map|`` (:func:`metrics.complexity.entropy`). Arguments as :func:`mprt`; the
    randomised model is :func:`randomise`'s (two ``explain`` calls). Where the original map has a single non-zero
    value (``H = 0``) the ratio is ``inf``, or 1 if the randomised map has one too. Quantus' ``EfficientMPRT``
    returns ``ratio - 1`` (its default complexity is a histogram entropy; pass it this entropy to compare).
    """
    x4, _ = as_batch(x)
    targets = as_targets(y, x4.shape[0], x4.device)
    random_model = randomise(model, blocks, seed)
    return entropy_ratio(_map(explain, model, x, targets), _map(explain, random_model, x, targets))


def entropy_ratio(original: maps.Map, randomised: maps.Map) -> torch.Tensor:
    """eMPRT's ratio ``[B]`` (float32) of two maps of the same inputs: ``H(randomised) / H(original)``, ``H`` the
    entropy of ``|map| / sum |map|``; ``inf`` where only the original has a single non-zero value (``H = 0``), 1
    where both have.

    >>> entropy_ratio(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([[1.0, 1.0], [0.0, 2.0]]))
    tensor([inf, 1.])
    """
    before, after = entropy(original), entropy(randomised)
    safe = torch.where(before > 0, before, torch.ones_like(before))
    limit = torch.where(after > 0, torch.full_like(after, float("inf")), torch.ones_like(after))
    return torch.where(before > 0, after / safe, limit).float()


def other_classes(y: Targets, n_classes: int, seed: int = 0,
                  sample_ids: Sequence[int] | torch.Tensor | None = None) -> torch.Tensor:
    """A random class other than ``y[i]`` for each sample ``[B]`` (long), uniform over the ``n_classes - 1`` others.

    Sample ``i`` draws from a ``torch.Generator`` seeded with ``derive_seed(seed, sample_ids[i])``
    (``sample_ids`` default ``0..B-1``; give the samples' data-set indices so that a sample gets the same class in
    any batch or shard). ``y``: ``B`` class indices, or one int for all the ``sample_ids``.
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise ValueError(f"n_classes: expected an integer >= 2, got {n_classes!r}")
    device = y.device if isinstance(y, torch.Tensor) else torch.device("cpu")
    ids = None if sample_ids is None else torch.as_tensor(sample_ids)
    batch = ids.numel() if ids is not None and isinstance(y, int) else torch.as_tensor(y).numel()
    y = as_targets(y, batch, device)
    check_targets_range(y, n_classes)
    ids = torch.arange(batch) if ids is None else ids
    if ids.dim() != 1 or ids.shape[0] != batch or ids.is_floating_point() or (ids < 0).any():
        raise ValueError(f"sample_ids: expected {batch} integers >= 0, got {sample_ids!r}")
    draws = [torch.randint(n_classes - 1, (1,), generator=torch.Generator().manual_seed(derive_seed(seed, int(i))))
             for i in ids.tolist()]
    r = torch.cat(draws).to(device)
    return r + (r >= y).long()


@register("random_logit")
def random_logit(model: nn.Module, x: torch.Tensor, y: Targets, explain: Explain, *, n_classes: int | None = None,
                 other: Targets | None = None, seed: int = 0, sample_ids: Sequence[int] | torch.Tensor | None = None,
                 measures: Sequence[str] = SIMILARITIES) -> dict[str, torch.Tensor]:
    """Random Logit ``{measure: [B], "degenerate": [B]}``: similarity of the map for class ``y`` and the map for a
    random other class (:func:`other_classes` with ``seed`` and ``sample_ids``; or the classes ``other`` given).

    ``n_classes`` defaults to the model's number of outputs (one forward pass of ``x[:1]``). The two maps come
    from one ``explain`` call on ``[x, x]`` with classes ``[y, other]``. Arguments otherwise as :func:`mprt`.
    """
    measures = check_measures(measures)
    x4, _ = as_batch(x)
    batch, device = x4.shape[0], x4.device
    targets = as_targets(y, batch, device)
    if other is None:
        if n_classes is None:
            with torch.no_grad():
                out = model(x[:1])
            if out.dim() != 2:
                raise ValueError(f"model: expected outputs [rows, classes], got shape {tuple(out.shape)}")
            n_classes = out.shape[1]
        other = other_classes(targets, n_classes, seed, sample_ids)
    else:
        other = as_targets(other, batch, device)
        if (other == targets).any():
            raise ValueError("other: each sample's other class must differ from its class y")
    both = _map(explain, model, torch.cat([x, x]), torch.cat([targets, other.to(device)]))
    if isinstance(both, torch.Tensor):
        true_map, other_map = both[:batch], both[batch:]
    else:
        true_map, other_map = [b[:batch] for b in both], [b[batch:] for b in both]
    return similarities(true_map, other_map, measures)


@register("data_randomisation")
def data_randomisation(attribution: maps.Map, randomised: maps.Map,
                       measures: Sequence[str] = SIMILARITIES) -> dict[str, torch.Tensor]:
    """Data randomisation test ``{measure: [B], "degenerate": [B]}``: similarity of a model's maps
    (``attribution``) and the maps of the same architecture trained on shuffled labels (``randomised``), same
    inputs, same method; maps of :mod:`metrics.maps` (:func:`metrics.similarity.similarities`)."""
    return similarities(attribution, randomised, measures)

