"""Images at real size: the pretrained model's accuracy pass streams the folder (one batch decoded at a time), and
each image model is explained and scored on its own preprocessing (two models with different statistics)."""

from __future__ import annotations

import weakref
from pathlib import Path

import numpy as np
import torch
from torch import nn

from workflow.lib import training
from workflow.lib.attribution import explain_shard
from workflow.lib.config import Config, DatasetSpec
from workflow.lib.data import imagenet as D
from workflow.lib.models import zoo as M
from workflow.lib.models.preprocessing import ImagePreprocessing

WNIDS = ("n01440764", "n01443537", "n01484850")


def _folder(root: Path, per_class: int, size: tuple[int, int] = (40, 52)) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for wnid in WNIDS:
        (root / wnid).mkdir(parents=True)
        for k in range(per_class):
            Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(root / wnid / f"{k}.JPEG")
    return root


def test_the_accuracy_pass_never_holds_more_than_one_batch_of_decoded_images(tmp_path, monkeypatch):
    """300 files, batches of 16: every decoded image is tracked until it is freed; at most one batch is alive at a
    time (memory does not grow with the folder), and the accuracy equals a direct count."""
    folder = _folder(tmp_path / "val", per_class=100)
    index = D.image_index(DatasetSpec("images", "images", "imagenet", path=str(folder)))
    preprocessing = ImagePreprocessing(input_size=(3, 32, 32), interpolation="bilinear", crop_pct=1.0,
                                         crop_mode="center", mean=(0.5,) * 3, std=(0.5,) * 3)
    alive, peak = [0], [0]
    decode = D.ImageFiles.__getitem__

    def tracked(self, i):
        image, label = decode(self, i)
        alive[0] += 1
        peak[0] = max(peak[0], alive[0])
        weakref.finalize(image, lambda: alive.__setitem__(0, alive[0] - 1))
        return image, label

    monkeypatch.setattr(D.ImageFiles, "__getitem__", tracked)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 1000)).eval()
    hits = training.image_hits(model, index, preprocessing, batch_size=16, workers=0, progress=False)
    assert 0 < peak[0] <= 16, peak
    predictions = []
    with torch.no_grad():
        for start in range(0, len(index), 50):
            x = D.decode_images(index.files[start:start + 50], preprocessing)
            predictions += model(preprocessing.normalize()(x)).argmax(1).tolist()
    assert hits.tolist() == (np.array(predictions) == np.array(index.labels)).tolist()


def test_two_image_models_are_explained_on_their_own_preprocessing(tmp_path):
    """One data set, EfficientNet-Lite0 (mean = std = 0.5, 224, bicubic, crop 0.875) and a timm ResNet-18 (ImageNet
    mean / std, crop 0.95): each model's explained logits equal a direct call of that model on timm's own transform
    of the file (an independent route: timm's ``create_transform`` with the model's data config, normalisation
    included)."""
    import timm
    from PIL import Image
    from timm.data import create_transform, resolve_data_config

    root = _folder(tmp_path / "val", per_class=1, size=(300, 400))
    config = Config.from_dict({
        "name": "t", "seed": 0, "device": "cpu", "resources": str(tmp_path / "resources"), "shards": 1,
        "datasets": {"images": {"modality": "images", "source": "imagenet", "path": str(root), "n_inputs": 3,
                                "models": ["efficientnet_lite0", "timm:resnet18"]}},
        "methods": {"saliency": {"kind": "baseline", "label": "Saliency"}},
        "wavelet": {"images": {"wavelet": "haar", "levels": 3, "mode": "reflect"}},
        "evaluation": {"batch_size": 4}})
    torch.manual_seed(0)
    nets = {"efficientnet_lite0": M.build("efficientnet_lite0", 1000),
            "timm:resnet18": M.build("timm:resnet18", 1000, pretrained=False)}
    stats = {name: ImagePreprocessing.of(name) for name in nets}
    assert stats["efficientnet_lite0"].mean != stats["timm:resnet18"].mean  # the two differ
    for name, net in nets.items():
        path = M.save(net, tmp_path / name.replace(":", "_") / "model.pt",
                      meta={"preprocessing": stats[name].as_dict()})
        explain_shard(config, "images", path, "saliency", 0, tmp_path / f"{name.replace(':', '_')}.pt")
        stored = torch.load(tmp_path / f"{name.replace(':', '_')}.pt", weights_only=False)
        direct = create_transform(**resolve_data_config(model=timm.create_model(
            "tf_efficientnet_lite0" if name == "efficientnet_lite0" else "resnet18", pretrained=False)))
        x = torch.stack([direct(Image.open(root / i).convert("RGB")) for i in stored["ids"]])
        with torch.no_grad():
            expected = net(x).gather(1, stored["y"][:, None])[:, 0]
        torch.testing.assert_close(stored["logit"], expected, atol=1e-4, rtol=1e-5)
