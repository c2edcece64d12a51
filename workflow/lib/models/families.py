"""Small members of five model families, sized for 32x32 inputs (the ``architectures`` target's offline default).

Registered in the model zoo (:data:`workflow.lib.models.zoo.MODELS`) under :data:`FAMILIES`' names, each a timm
network ``(n_classes, in_channels=1) -> nn.Module`` taking ``[B, in_channels, 32, 32]`` to logits
``[B, n_classes]`` (other sizes work: the CNNs pool globally, the transformers take ``img_size``):

- ``tiny_resnet``: timm ``ResNet``, one ``BasicBlock`` per stage (16-32-64-128 channels), output stride 8, so
  that its last feature map (GradCAM's ``layer4``) is 4x4 at 32x32;
- ``tiny_convnext``: timm ``ConvNeXt`` (patch-4 stem, one block per stage, 16-32-64-128 channels, output
  stride 8: a 4x4 last map), with 3x3 depthwise kernels (7x7 ones would mostly read padding on 8x8 and 4x4
  maps), layer scales starting at 1 and PyTorch's default initialisation of its convolutions and dense layers
  instead of timm's truncated normal of sd 0.02. In a trial on the texture set (4 epochs, Adam, lr 0.001, batch 32)
  timm's defaults (7x7, layer scale 1e-6, sd 0.02) reached 49 % test accuracy, these 77 %;
- ``tiny_vit``: timm ``VisionTransformer`` (patch 4: an 8x8 token grid and a class token; 4 blocks of width 64,
  4 heads);
- ``tiny_swin``: timm ``SwinTransformer`` (patch 4, window 4, two stages of 2 blocks, widths 48-96: 8x8 then 4x4
  tokens);
- ``tiny_efficientnet``: timm ``EfficientNet`` (a depthwise-separable block and three inverted residuals with
  squeeze-and-excitation, SiLU, stem stride 2: a 4x4 last map).

Example::

    >>> import torch
    >>> from workflow.lib.models import zoo
    >>> sorted(FAMILIES.values()) == sorted(n for n in zoo.available() if n.startswith("tiny_"))
    True
    >>> zoo.build("tiny_swin", 5)(torch.rand(2, 1, 32, 32)).shape
    torch.Size([2, 5])
"""

from __future__ import annotations

from torch import nn

from workflow.lib.models.zoo import MODELS

# family -> registered builder
FAMILIES = {"resnet": "tiny_resnet", "convnext": "tiny_convnext", "vit": "tiny_vit", "swin": "tiny_swin",
            "efficientnet": "tiny_efficientnet"}
WIDTHS = (16, 32, 64, 128)  # channels of the CNNs' four stages


@MODELS.register("tiny_resnet")
def tiny_resnet(n_classes: int, in_channels: int = 1) -> nn.Module:
    from timm.models.resnet import BasicBlock, ResNet

    return ResNet(block=BasicBlock, layers=(1, 1, 1, 1), channels=WIDTHS, in_chans=in_channels,
                  num_classes=n_classes, stem_width=WIDTHS[0], output_stride=8)


@MODELS.register("tiny_convnext")
def tiny_convnext(n_classes: int, in_channels: int = 1) -> nn.Module:
    from timm.models.convnext import ConvNeXt

    model = ConvNeXt(in_chans=in_channels, num_classes=n_classes, depths=(1, 1, 1, 1), dims=WIDTHS, output_stride=8,
                     kernel_sizes=3, ls_init_value=1.0)
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            module.reset_parameters()
    return model


@MODELS.register("tiny_vit")
def tiny_vit(n_classes: int, in_channels: int = 1, img_size: int = 32) -> nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(img_size=img_size, patch_size=4, in_chans=in_channels, num_classes=n_classes,
                             embed_dim=64, depth=4, num_heads=4, mlp_ratio=2.0)


@MODELS.register("tiny_swin")
def tiny_swin(n_classes: int, in_channels: int = 1, img_size: int = 32) -> nn.Module:
    from timm.models.swin_transformer import SwinTransformer

    return SwinTransformer(img_size=img_size, patch_size=4, in_chans=in_channels, num_classes=n_classes,
                           window_size=4, embed_dim=48, depths=(2, 2), num_heads=(2, 4), mlp_ratio=2.0)


@MODELS.register("tiny_efficientnet")
def tiny_efficientnet(n_classes: int, in_channels: int = 1) -> nn.Module:
    from timm.models._efficientnet_builder import decode_arch_def
    from timm.models.efficientnet import EfficientNet

    arch = [["ds_r1_k3_s1_e1_c16_se0.25"], ["ir_r1_k3_s2_e4_c24_se0.25"], ["ir_r1_k5_s2_e4_c48_se0.25"],
            ["ir_r1_k3_s1_e4_c64_se0.25"]]
    return EfficientNet(block_args=decode_arch_def(arch), num_features=128, stem_size=16, in_chans=in_channels,
                        num_classes=n_classes, act_layer=nn.SiLU)
