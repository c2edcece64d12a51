"""The ``wam`` command: explain one file with WAM and draw its maps (``wam explain``); run the speed
comparison (``wam bench``, the arguments of ``python -m wam.bench``).

``wam explain`` writes a figure: the input, WAM's dyadic map, one map per level (finest first) and the heatmap
over the input, titled with the predicted class; ``--save`` also writes the maps and the prediction
(:func:`record`). Bad arguments end with exit status 2 and one line ``wam explain: error: ARGUMENT: ...``.
Examples: ``EXAMPLES`` below (also in ``wam explain --help``); the Python entry point is :func:`explain`.
"""

from __future__ import annotations

import argparse
import difflib
import sys
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from wam import transform, viz
from wam.audio import WaveformClassifier
from wam.explainer import METHODS, WAM, Explanation
from wam.utils import pick_device
from workflow.lib import files
from workflow.lib.data import esc50, imagenet
from workflow.lib.models import zoo
from workflow.lib.models.preprocessing import IMAGENET_DEFAULTS, ImagePreprocessing

if TYPE_CHECKING:
    from matplotlib.figure import Figure

KINDS = {
    "image": (".jpg", ".jpeg", ".png"),
    "audio": (".wav",),
    "volume": (".npy", ".npz", ".nii", ".nii.gz"),
}
EXAMPLES = """examples:
  wam explain photo.jpg                          # EfficientNet-Lite0 with its offline ImageNet weights
  wam explain photo.png --model timm:resnet50 --method integrated --out resnet50.png
  wam explain clip.wav --model results/default/models/audio/audio_resnet/model.pt --save maps.pt
  wam explain volume.npz --model results/default/models/volumes/resnet3d/model.pt --target 2
  wam explain stack.npz --key test_images --index 0 --model model.pt    # one volume of a MedMNIST file
  wam explain scan.nii.gz --model model.pt --size 28                    # NIfTI (monai), resized to 28^3
"""
NDIM = {"audio": 1, "image": 2, "volume": 3}
DEFAULT_MODEL = "efficientnet_lite0"
MODEL_SUFFIXES = (".pt", ".pth", ".ts", ".jit")  # a --model ending so names a file, never a timm model
# Library argument name -> the option that sets it (library ValueErrors start with "name: ").
_OPTIONS = {"levels": "--levels", "wavelet": "--wavelet", "n_samples": "--n-samples", "batch_size": "--batch-size"}


@dataclass
class Model:
    """A classifier ready to explain and what is known about it.

    ``label``: what ``--model`` named; ``arch``: registry or ``timm:`` name whose timm data config
    preprocesses images (None: ImageNet defaults); ``class_names``: from a checkpoint's meta;
    ``imagenet``: its 1,000 outputs are ImageNet classes.
    """

    module: nn.Module
    label: str
    arch: str | None = None
    class_names: list[str] | None = None
    imagenet: bool = False

    @property
    def is_audio(self) -> bool:
        """A waveform classifier (``wam.audio.WaveformClassifier``, scripted or not)."""
        return isinstance(self.module, WaveformClassifier) or getattr(
            self.module, "original_name", None) == "WaveformClassifier"

    def names(self, n_classes: int) -> list[str]:
        if self.class_names is not None and len(self.class_names) == n_classes:
            return [str(c) for c in self.class_names]
        if self.imagenet and n_classes == 1000:
            from workflow.lib.data.imagenet import class_names as imagenet_names

            return imagenet_names()
        return [f"class {i}" for i in range(n_classes)]


@dataclass
class Result:
    """What ``wam explain`` computed for one input.

    ``x``: the model's input ``[1, C, *size]`` (audio ``[1, T]``); ``probabilities`` ``[n_classes]``;
    ``panels``: one ``{"title", "images", "lines"}`` per axes of ``figure`` (what was drawn).
    """

    input: Path
    kind: str
    model: Model
    x: torch.Tensor
    explanation: Explanation
    probabilities: torch.Tensor
    target: int
    class_names: list[str]
    figure: Figure | None
    panels: list[dict] = field(default_factory=list)

    @property
    def predicted(self) -> int:
        return int(self.probabilities.argmax())


# ----------------------------------------------------------------------------- inputs


def input_kind(path: Path) -> str:
    """``"image"``, ``"audio"`` or ``"volume"`` from the file name; ValueError naming INPUT otherwise."""
    name = path.name.lower()
    for kind, extensions in KINDS.items():
        if name.endswith(extensions):
            if not path.is_file():
                raise ValueError(f"INPUT: {path}: no such file")
            return kind
    accepted = ", ".join(e for exts in KINDS.values() for e in exts)
    raise ValueError(f"INPUT: {path}: unsupported extension {''.join(path.suffixes) or '(none)'!r}; "
                     f"expected one of {accepted}")


def _named(argument: str, error: Exception) -> ValueError:
    return ValueError(f"{argument}: {error}")


def load_image(path: Path, model: Model) -> torch.Tensor:
    """``[1, 3, H, W]``: the benchmark's preprocessing (timm eval transform of the model's data config)."""
    preprocessing = image_preprocessing(model)
    try:
        return preprocessing.normalize()(imagenet.decode_images([path], preprocessing))
    except ValueError as e:
        raise _named("INPUT", e) from e


def image_preprocessing(model: Model):
    """The model's own preprocessing (its timm data config), or timm's ImageNet defaults for TorchScript."""
    if model.arch:
        return ImagePreprocessing.of(model.arch)
    return ImagePreprocessing.from_dict(IMAGENET_DEFAULTS)


def sample_rate(module: nn.Module) -> int:
    """The sample rate (Hz) of a waveform classifier's front-end (its first ``sample_rate`` attribute)."""
    for m in module.frontend.modules():
        rate = getattr(m, "sample_rate", None)
        if isinstance(rate, int | float) and rate > 0:
            return int(rate)
    raise ValueError("--model: its audio front-end has no sample_rate")


def load_audio(path: Path, model: Model) -> torch.Tensor:
    """``[1, T]``: soundfile, channels averaged, resampled to the model's rate (as the benchmark's clips)."""
    try:
        wave, rate = esc50.read_clip(path)
    except ValueError as e:
        raise _named("INPUT", e) from e
    return torch.from_numpy(np.ascontiguousarray(esc50.resample(wave, rate, sample_rate(model.module))))[None]


def _unreadable(path: Path, e: Exception) -> ValueError:
    return ValueError(f"INPUT: {path}: corrupt or unreadable array file ({_first_line(e)})")


def _array(path: Path, key: str | None) -> np.ndarray:
    """The array of a ``.npy``, or of a ``.npz`` (its only array, or ``key``; read by :func:`files.load_npz`)."""
    if path.suffix.lower() != ".npz":
        if key is not None:
            raise ValueError(f"--key: only for .npz files; {path} holds a single array")
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:  # what numpy raises on a damaged file
            raise _unreadable(path, e) from e
    try:
        arrays = files.load_npz(path)
    except ValueError as e:
        raise ValueError(f"INPUT: {path}: corrupt or unreadable array file ({_first_line(e)})") from e
    keys = list(arrays)
    if key is None and len(keys) != 1:
        raise ValueError(f"--key: {path} holds {len(keys)} arrays {keys}; pick one with --key")
    if key is not None and key not in keys:
        raise ValueError(f"--key: {key!r} not in {path} (arrays {keys})")
    return arrays[key or keys[0]]


def load_volume(path: Path, key: str | None = None, index: int | None = None, size: int | None = None
                ) -> torch.Tensor:
    """``[1, C, D, H, W]`` float32 from ``.npy`` / ``.npz`` / NIfTI.

    Arrays ``[D, H, W]`` or ``[C, D, H, W]`` (``index`` first picks one item of a stack ``[N, ...]``);
    ``uint8`` is divided by 255 (MedMNIST's convention), other dtypes are used as stored. NIfTI is read by
    monai's ``LoadImage`` (channel first) and rescaled to [0, 1] (``ScaleIntensity``). ``size``: resized
    (trilinear) to ``size^3``.
    """
    if path.name.lower().endswith((".nii", ".nii.gz")):
        from monai.transforms import Compose, LoadImage, ScaleIntensity

        try:
            arr = np.asarray(Compose([LoadImage(image_only=True, ensure_channel_first=True),
                                      ScaleIntensity()])(str(path)), dtype=np.float32)
        except Exception as e:  # monai wraps the readers' errors in RuntimeError
            raise _named("INPUT", f"{path}: corrupt or unreadable NIfTI file ({type(e).__name__})") from e
    else:
        arr = _array(path, key)
    if index is not None:
        if arr.ndim < 4:
            raise ValueError(f"--index: picks one item of a stack [N, D, H, W] or [N, C, D, H, W]; {path} holds "
                             f"an array of shape {arr.shape}")
        if not -arr.shape[0] <= index < arr.shape[0]:
            raise ValueError(f"--index: {index} out of range for a stack of {arr.shape[0]} items")
        arr = arr[index]
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or arr.ndim not in (3, 4):
        raise ValueError(f"INPUT: {path}: array of shape {arr.shape} ({arr.dtype}); expected a numeric "
                         "volume [D, H, W] or [C, D, H, W] (--index picks one item of a stack)")
    scale = 255.0 if arr.dtype == np.uint8 else 1.0
    x = torch.from_numpy(arr.astype(np.float32) / scale)
    x = x[None, None] if x.dim() == 3 else x[None]
    if size is not None:
        x = transform.resize(x, (size,) * 3)
    return x


# ----------------------------------------------------------------------------- models


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("/constants.pkl") for n in z.namelist())
    except zipfile.BadZipFile:
        return False


def _first_line(e: Exception) -> str:
    return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"


def _model_file(path: Path) -> Model:
    if _is_torchscript(path):
        try:
            with warnings.catch_warnings():  # torch 2.x marks TorchScript deprecated; the file is what we have
                warnings.simplefilter("ignore", FutureWarning)
                module = torch.jit.load(str(path), map_location="cpu")
        except Exception as e:
            raise ValueError(f"--model: {path}: unreadable TorchScript file ({_first_line(e)})") from e
        return Model(module.eval(), str(path))
    try:
        module = zoo.load(path)
    except ValueError as e:
        raise ValueError(f"--model: {path}: neither a TorchScript file nor a checkpoint written by the "
                         f"benchmark's train rule ({str(e).splitlines()[0]})") from e
    except RuntimeError as e:  # a registry checkpoint whose weights do not fit today's architecture
        raise ValueError(f"--model: {path}: its weights do not fit the current architecture; retrain it "
                         f"({_first_line(e)})") from e
    arch = zoo.spec(module)["name"]
    image = arch == DEFAULT_MODEL or arch.startswith(zoo.TIMM_PREFIX)
    return Model(module, str(path), arch if image else None, module.meta.get("class_names"), imagenet=image)


def _timm_model(name: str, label: str, pretrained: bool) -> Model:
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    n_classes = cfg.num_classes if cfg is not None and cfg.num_classes else 1000
    try:
        module = zoo.build(zoo.TIMM_PREFIX + name, n_classes, pretrained=pretrained)
    except OSError as e:  # huggingface_hub's LocalEntryNotFoundError, urllib's URLError, ...
        raise ValueError(
            f"--model: timm model {name!r} needs its pretrained weights, which are not in the local cache and "
            f"could not be downloaded ({type(e).__name__}; HF_HUB_OFFLINE set or no network); use --model "
            f"{DEFAULT_MODEL} (ImageNet weights installed with the package) or --no-pretrained (random "
            "weights)") from e
    return Model(module, label, zoo.TIMM_PREFIX + name, imagenet=pretrained)


def load_model(spec: str | None, kind: str, pretrained: bool = True) -> Model:
    """The classifier ``--model`` names: a file (TorchScript, or a checkpoint of the ``train`` rule),
    ``efficientnet_lite0``, or a timm model (``timm:<name>`` or a plain timm name). ``None``: the default
    for images; audio and volumes need a model file."""
    import timm

    if spec is None:
        if kind == "image":
            spec = DEFAULT_MODEL
        else:
            trained = "audio_resnet" if kind == "audio" else "resnet3d or vit3d"
            raise ValueError(f"--model: required for {'a .wav' if kind == 'audio' else 'a volume'} input: a "
                             f"model.pt of {trained} written by the train rule, or a TorchScript file")
    path = Path(spec).expanduser()
    if path.is_file():
        return _model_file(path)
    if spec == DEFAULT_MODEL:
        return Model(zoo.build(DEFAULT_MODEL, 1000), spec, spec, imagenet=True)
    if spec in zoo.available():
        raise ValueError(f"--model: {spec!r} is trained by the workflow; pass its checkpoint "
                         f"(results/<config>/models/<dataset>/{spec}/model.pt)")
    name = spec.removeprefix(zoo.TIMM_PREFIX)
    if timm.is_model(name):
        return _timm_model(name, spec, pretrained)
    if "/" in spec or path.suffix.lower() in MODEL_SUFFIXES:
        raise ValueError(f"--model: {spec}: no such file")
    close = difflib.get_close_matches(name, [DEFAULT_MODEL, *timm.list_models()], n=3)
    raise ValueError(f"--model: unknown model {spec!r}; expected a model file (model.pt of the train rule or "
                     f"TorchScript), {DEFAULT_MODEL!r}, or a timm model name"
                     + (f" (did you mean {', '.join(close)}?)" if close else ""))


# ----------------------------------------------------------------------------- explanation


def _option_error(e: ValueError) -> ValueError:
    """A library ValueError (``"levels: ..."``) renamed after the option that sets the argument."""
    name, _, rest = str(e).partition(":")
    return ValueError(f"{_OPTIONS[name]}:{rest}") if name in _OPTIONS else e


def parse_target(value: str) -> str | int:
    """``auto`` or a non-negative class index (argparse type of ``--target``)."""
    if value == "auto":
        return value
    try:
        index = int(value)
    except ValueError:
        index = -1
    if index < 0:
        raise argparse.ArgumentTypeError(f"expected auto or a class index >= 0, got {value!r}")
    return index


def explain(input: str | Path, model: str | None = None, method: str = "smooth", target: str | int = "auto",
            levels: int = 3, wavelet: str = "haar", n_samples: int = 25, batch_size: int = 16,
            device: str = "auto", pretrained: bool = True, key: str | None = None, index: int | None = None,
            size: int | None = None, progress: bool = False) -> Result:
    """Explain one file: load it and the model, predict, run WAM on the target class, draw the figure.

    Arguments as the command's options. Raises ``ValueError`` whose message starts with the argument at
    fault (``INPUT``, ``--model``, ``--target`` ...).

    Example::

        >>> import tempfile, skimage.data
        >>> from PIL import Image
        >>> path = Path(tempfile.mkdtemp()) / "coffee.png"
        >>> Image.fromarray(skimage.data.coffee()).save(path)
        >>> r = explain(str(path), method="gradient")          # EfficientNet-Lite0, its ImageNet weights
        >>> r.class_names[r.predicted], len(r.figure.axes)
        ('espresso', 6)
    """
    path = Path(input).expanduser()
    kind = input_kind(path)
    if size is not None and kind != "volume":
        raise ValueError(f"--size: only for volume inputs, got {'a .wav' if kind == 'audio' else 'an image'}")
    if (key is not None or index is not None) and kind != "volume":
        raise ValueError(f"--{'key' if key is not None else 'index'}: only for .npy / .npz / NIfTI volumes")
    try:
        transform.check_wavelet(wavelet)
    except ValueError as e:
        raise _option_error(e) from e
    m = load_model(model, kind, pretrained)
    if (kind == "audio") != m.is_audio:
        if kind == "audio":
            raise ValueError(f"--model: a .wav input needs an audio model (a wam.audio.WaveformClassifier, e.g. "
                             f"the model.pt of audio_resnet written by the train rule); {m.label} is not one")
        raise ValueError(f"--model: {m.label} is an audio model (a WaveformClassifier); INPUT must be a .wav")
    x = {"image": lambda: load_image(path, m), "audio": lambda: load_audio(path, m),
         "volume": lambda: load_volume(path, key, index, size)}[kind]()
    try:
        dev = pick_device(device)
        net, x = m.module.to(dev).eval(), x.to(dev)
    except (RuntimeError, AssertionError) as e:  # an unknown device name; CUDA not built or not present
        raise ValueError(f"--device: {device!r} is not usable here ({_first_line(e)})") from e
    try:
        with torch.no_grad():
            logits = net(x)
    except RuntimeError as e:
        raise ValueError(f"INPUT: {path}: an input of shape {list(x.shape)} does not fit --model {m.label} "
                         f"({_first_line(e)})") from e
    if logits.dim() != 2 or logits.shape[0] != 1:
        raise ValueError(f"--model: expected logits [1, n_classes], got shape {list(logits.shape)}")
    n_classes = logits.shape[1]
    probabilities = logits.float().softmax(1)[0].cpu()
    y = int(probabilities.argmax()) if target == "auto" else int(target)
    if not 0 <= y < n_classes:
        raise ValueError(f"--target: {y} out of range for a model with {n_classes} classes; expected auto or "
                         f"an integer in [0, {n_classes - 1}]")
    try:
        explainer = WAM(net, ndim=NDIM[kind], wavelet=wavelet, levels=levels, method=method, n_samples=n_samples,
                        batch_size=batch_size, progress=progress)
        expl = explainer(x, [y])
    except ValueError as e:
        raise _option_error(e) from e
    names = m.names(n_classes)
    result = Result(path, kind, m, x.detach().cpu(), expl, probabilities, y, names, figure=None)
    result.figure, result.panels = draw(result, method, wavelet, levels)
    return result


# ----------------------------------------------------------------------------- figure


def _normalised(t: torch.Tensor) -> np.ndarray:
    t = t.detach().float().cpu()
    return ((t - t.min()) / (t.max() - t.min()).clamp_min(1e-12)).numpy()


def _input_view(result: Result) -> tuple[np.ndarray, str]:
    """What the input panel shows: the RGB image, the log-mel (audio) or the middle slice (volumes)."""
    x = result.x[0]
    if result.kind == "image":
        shown = image_preprocessing(result.model).normalize().inverse(x[None])[0]
        return shown.clamp(0, 1).permute(1, 2, 0).numpy(), "input"
    if result.kind == "audio":
        with torch.no_grad():
            mel = result.model.module.frontend(result.x.to(transform.bands(result.explanation.coeffs)[0].device))
        return mel.reshape(mel.shape[-2:]).cpu().numpy(), "input (log-mel)"
    return x[0, x.shape[1] // 2].numpy(), "input (middle slice)"


def draw(result: Result, method: str, wavelet: str, levels: int) -> tuple[Figure, list[dict]]:
    """The figure: input, dyadic map, per-level maps (finest first), heatmap over the input.

    Returns ``(figure, panels)``, ``panels`` one ``{"title", "images", "lines"}`` per axes.
    """
    from matplotlib.figure import Figure

    expl, kind = result.explanation, result.kind
    n = 3 + levels
    fig = Figure(figsize=(2.5 * n, 3.0), layout="constrained")
    axes = fig.subplots(1, n)
    shown, title = _input_view(result)
    if kind == "audio":
        axes[0].imshow(shown, origin="lower", aspect="auto", cmap="magma")
    else:
        axes[0].imshow(shown, cmap="gray" if shown.ndim == 2 else None)
    axes[0].set_title(title, fontsize=8)
    viz.dyadic(expl, index=0, ax=axes[1])
    viz.scales(expl, index=0, axes=axes[2:-1])
    heat, overlay = expl.heatmap()[0], axes[-1]
    if kind == "audio":
        wave = result.x[0].numpy()
        overlay.plot(wave, color="0.6", lw=0.4)
        overlay.plot(_normalised(heat) * np.abs(wave).max(), color="red", lw=0.8)
        overlay.set_xlim(0, len(wave))
    else:
        overlay.imshow(shown, cmap="gray" if shown.ndim == 2 else None)
        overlay.imshow(_normalised(heat if kind == "image" else heat[heat.shape[0] // 2]), cmap="jet", alpha=0.45)
    overlay.set_title("heatmap on input", fontsize=8)
    for ax in axes:
        if ax.images:
            ax.set_xticks([])
            ax.set_yticks([])
    p, c, y = result.probabilities, result.predicted, result.target
    explained = "" if y == c else f"; explained: {result.class_names[y]} ({y})"
    label = Path(result.model.label)  # a model file: its folder and name (results/.../resnet3d/model.pt)
    label = "/".join(label.parts[-2:]) if label.is_file() else result.model.label
    fig.suptitle(f"{result.input.name}: {result.class_names[c]} ({c}), p = {float(p[c]):.2f}{explained}  "
                 f"[{label}; WAM {method}, {wavelet}, {levels} levels]", fontsize=9)
    panels = [{"title": ax.get_title(), "images": len(ax.images), "lines": len(ax.lines)} for ax in fig.axes]
    return fig, panels


# ----------------------------------------------------------------------------- outputs


def record(result: Result, figure_path: Path | None = None, **options) -> dict:
    """What ``--save`` writes (``torch.save``; loads with ``weights_only=True``).

    ``grads`` / ``coeffs``: per band ``[C, *band]`` in :func:`wam.transform.bands` order (rebuild ptwt's
    structure with ``transform.unbands``); ``dyadic`` ``[*size]``; ``scales`` ``[levels, *size]`` finest
    first; ``heatmap`` ``[*size]``; ``scale_shares`` / ``scale_shares_per_coefficient`` ``[levels + 1]`` (finest
    first, approximation last: :meth:`wam.Explanation.scale_shares`); ``x`` the model's input (audio ``[T]`` at
    ``sample_rate``);
    ``prediction`` / ``target``: ``{"index", "name", "probability"}``; ``probabilities`` ``[n_classes]``;
    ``panels`` the figure's panels; ``options`` the command's options; ``provenance``.
    """
    expl = result.explanation

    def cls(i: int) -> dict:
        return {"index": i, "name": result.class_names[i], "probability": float(result.probabilities[i])}

    out = {
        "input": str(result.input), "modality": result.kind, "model": result.model.label,
        "x": result.x[0], "grads": [b[0].detach().cpu() for b in transform.bands(expl.grads)],
        "coeffs": [b[0].detach().cpu() for b in transform.bands(expl.coeffs)],
        "dyadic": expl.dyadic()[0].cpu(), "scales": expl.scales()[0].cpu(), "heatmap": expl.heatmap()[0].cpu(),
        "scale_shares": expl.scale_shares()[0].cpu(),
        "scale_shares_per_coefficient": expl.scale_shares(per_coefficient=True)[0].cpu(),
        "prediction": cls(result.predicted), "target": cls(result.target),
        "probabilities": result.probabilities, "class_names": result.class_names, "panels": result.panels,
        "figure": str(figure_path) if figure_path else None, "options": options,
        "provenance": files.provenance(),
    }
    if result.kind == "audio":
        out["sample_rate"] = sample_rate(result.model.module)
    return out


def check_folder(path: Path | None, argument: str) -> None:
    """The folder of the output ``path`` exists (the command creates none); ``ValueError`` naming ``argument`` and
    the missing folder otherwise (``None``: no such output)."""
    if path is None:
        return
    folder = Path(path).parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise ValueError(f"{argument}: cannot write {path}: the folder {folder} {what} (create it first, or choose "
                         "another path)")


def _write(path: Path, argument: str, writer) -> None:
    try:
        with files.atomic_path(path) as tmp:
            writer(tmp)
    except (OSError, ValueError) as e:  # a folder not writable, a format matplotlib does not know
        raise ValueError(f"{argument}: cannot write {path} ({_first_line(e)})") from e


def default_figure_path(input: Path) -> Path:
    """``<INPUT name without its extension>.wam.png`` in the current folder."""
    name = input.name
    for extensions in KINDS.values():
        for e in extensions:
            if name.lower().endswith(e):
                return Path(name[: -len(e)] + ".wam.png")
    return Path(name + ".wam.png")


# ----------------------------------------------------------------------------- command line


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def build_parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The ``wam`` parser and its ``explain`` sub-parser."""
    parser = argparse.ArgumentParser(prog="wam", description="WAM (Wavelet Attribution Method) from the "
                                     "command line.", epilog="`wam COMMAND --help` for each command.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ex = sub.add_parser("explain", help="explain one image, .wav or volume and draw WAM's maps",
                        description="Explain one image, .wav or volume with WAM and write a figure: the input,\n"
                        "WAM's dyadic map, one map per level (finest first) and the heatmap over the input,\n"
                        "titled with the predicted class. --save also writes the maps and the prediction.",
                        epilog=EXAMPLES,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    ex.add_argument("input", metavar="INPUT", help="image (.jpg, .jpeg, .png), audio (.wav) or volume "
                    "(.npy, .npz, .nii, .nii.gz)")
    ex.add_argument("--model", metavar="NAME|PATH", help=f"'{DEFAULT_MODEL}' (default for images; offline "
                    "ImageNet weights), a timm name ('timm:NAME' or NAME; pretrained weights from the cache or "
                    "the hub), a model.pt written by the train rule, or a TorchScript file; required for "
                    "audio (a WaveformClassifier such as audio_resnet) and volumes")
    ex.add_argument("--method", choices=METHODS, default="smooth", help="WAM variant (default smooth)")
    ex.add_argument("--target", type=parse_target, default="auto", metavar="auto|K",
                    help="class to explain: the predicted one (auto, default) or index K")
    ex.add_argument("--levels", type=_positive, metavar="L", default=3, help="wavelet decomposition levels (default 3)")
    ex.add_argument("--wavelet", default="haar", metavar="NAME", help="any discrete PyWavelets wavelet (default haar)")
    ex.add_argument("--n-samples", type=_positive, metavar="N", default=25,
                    help="noisy copies (smooth) or path points (integrated); default 25")
    ex.add_argument("--batch-size", type=_positive, metavar="B", default=16,
                    help="rows sent through the model at once (default 16)")
    ex.add_argument("--device", default="auto", metavar="DEV", help="auto (CUDA when available), cpu, cuda, cuda:1 ...")
    ex.add_argument("--no-pretrained", dest="pretrained", action="store_false",
                    help="timm models: random weights instead of the pretrained ones (nothing downloaded)")
    ex.add_argument("--key", help=".npz holding several arrays: the array to explain")
    ex.add_argument("--index", type=int, metavar="I", help="volume stack [N, ...]: the item to explain")
    ex.add_argument("--size", type=_positive, metavar="S", help="volumes: resize (trilinear) to S^3 first")
    ex.add_argument("--out", type=Path, metavar="FIG.png",
                    help="figure path (any matplotlib format); default <INPUT name>.wam.png here")
    ex.add_argument("--save", type=Path, metavar="maps.pt", help="also save the maps and prediction (torch.save)")
    sub.add_parser("bench", add_help=False, help="speed of WAM against its forward+backward floor "
                   "(python -m wam.bench; `wam bench --help` for its options)")
    return parser, ex


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``wam`` console script; returns the exit status (errors: ``SystemExit(2)``)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        from wam import bench

        bench.main(argv[1:], prog="wam bench")
        return 0
    parser, ex = build_parser()
    args = parser.parse_args(argv)
    options = {k: v for k, v in vars(args).items() if k not in ("command", "input", "out", "save")}
    try:
        check_folder(args.out, "--out")  # before any work: a typo in a folder is not an afternoon lost
        check_folder(args.save, "--save")
        result = explain(args.input, progress=sys.stderr.isatty(), **options)
        out = args.out or default_figure_path(result.input)
        _write(out, "--out", lambda tmp: result.figure.savefig(
            tmp, dpi=110, **({"metadata": {"Software": None}} if tmp.suffix.lower() == ".png" else {})))
        if args.save:
            saved = record(result, out, **options)
            _write(args.save, "--save", lambda tmp: torch.save(saved, tmp))
    except ValueError as e:
        ex.exit(2, f"wam explain: error: {' '.join(str(e).split())}\n")
    c = result.predicted
    print(f"{result.input}: {result.class_names[c]} ({c}), p = {float(result.probabilities[c]):.3f}; "
          f"explained class {result.target}; figure {out}" + (f"; maps {args.save}" if args.save else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
