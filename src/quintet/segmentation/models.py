"""A DeepLabV3+-style encoder–decoder sized by configuration (Kim et al. 2022, Sec. 4.1).

The paper uses DeepLabV3+ with a ResNet-50 trunk (ImageNet weights), ASPP, a decoder that mixes
in low-level features, and an auxiliary head on the stage-3 features.  Here the trunk is written
from scratch (no torchvision) with configurable widths, depths and block type, so

* ``NetConfig.tiny()`` trains from scratch on a CPU at 120×90, and
* ``NetConfig.resnet50()`` builds the paper's trunk shape (bottlenecks 3-4-6-3, widths 256…2048,
  output stride 16) for a GPU.

The categorical memory (:mod:`quintet.segmentation.memory`) sits on the ASPP output, between
the ASPP projection and the decoder, as in the authors' released code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from quintet.core.errors import QuintetError
from quintet.segmentation.memory import CategoricalMemory


@dataclass(frozen=True)
class NetConfig:
    """Shape of the network.  ``widths``: output channels of the 4 residual stages."""

    num_classes: int = 11
    stem: int = 16
    widths: tuple[int, ...] = (16, 32, 48, 64)
    depths: tuple[int, ...] = (1, 1, 1, 1)
    block: str = "basic"  # "basic" (ResNet-18/34 style) or "bottleneck" (ResNet-50 style)
    output_stride: int = 8  # 8 or 16
    aspp_dim: int = 64
    aspp_rates: tuple[int, ...] = (1, 2, 3)
    low_dim: int = 24
    decoder_dim: int = 64
    memory: bool = True
    read_temperature: float = 1.0
    gumbel_read: bool = False
    momentum: float = 0.8

    def validate(self) -> "NetConfig":
        if self.num_classes < 2:
            raise QuintetError(f"num_classes must be >= 2, got {self.num_classes}")
        if len(self.widths) != 4 or len(self.depths) != 4:
            raise QuintetError(f"widths and depths need 4 stages each, got {self.widths} and {self.depths}")
        if self.block not in ("basic", "bottleneck"):
            raise QuintetError(f"unknown block {self.block!r}; expected one of: basic, bottleneck")
        if self.output_stride not in (8, 16):
            raise QuintetError(f"output_stride must be 8 or 16, got {self.output_stride}")
        if not 0.0 <= self.momentum < 1.0:
            raise QuintetError(f"memory momentum must be in [0, 1), got {self.momentum}")
        return self

    @classmethod
    def tiny(cls, num_classes: int = 11, **kw: Any) -> "NetConfig":
        return cls(num_classes=num_classes, **kw).validate()

    @classmethod
    def resnet50(cls, num_classes: int = 19, **kw: Any) -> "NetConfig":
        """The paper's trunk: bottleneck ResNet-50, output stride 16, ASPP 256, rates 6/12/18."""
        return cls(num_classes=num_classes, stem=64, widths=(256, 512, 1024, 2048), depths=(3, 4, 6, 3),
                   block="bottleneck", output_stride=16, aspp_dim=256, aspp_rates=(6, 12, 18),
                   low_dim=48, decoder_dim=256, **kw).validate()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NetConfig":
        d = dict(d)
        for key in ("widths", "depths", "aspp_rates"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__}).validate()


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a residual connection (He et al. 2016)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = _bn(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = _bn(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _bn(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.short is None else self.short(x)))


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3 (strided/dilated), 1×1 expand; ``cout`` is the expanded width."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        mid = max(cout // 4, 1)
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = _bn(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = _bn(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = _bn(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _bn(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.short is None else self.short(x)))


class ResNetTrunk(nn.Module):
    """Stem (stride 2) + 4 stages.  Stage 1 has stride 2 (low-level features at 1/4), stage 2
    stride 2 (1/8); stages 3–4 are strided or dilated so the output stride is 8 or 16.

    ``forward(x: (B,3,H,W)) -> (low (B,w1,H/4,W/4), stage3 (B,w3,..), stage4 (B,w4,H/os,W/os))``
    """

    def __init__(self, cfg: NetConfig):
        super().__init__()
        block = BasicBlock if cfg.block == "basic" else Bottleneck
        self.stem = nn.Sequential(nn.Conv2d(3, cfg.stem, 3, 2, 1, bias=False), _bn(cfg.stem), nn.ReLU(inplace=True))
        s3, d3 = (1, 2) if cfg.output_stride == 8 else (2, 1)
        d4 = 4 if cfg.output_stride == 8 else 2
        plan = [(2, 1), (2, 1), (s3, d3), (1, d4)]
        stages, cin = [], cfg.stem
        for (stride, dil), width, depth in zip(plan, cfg.widths, cfg.depths):
            blocks = [block(cin, width, stride, dil)]
            blocks += [block(width, width, 1, dil) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = width
        self.layer1, self.layer2, self.layer3, self.layer4 = stages

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        low = self.layer1(self.stem(x))
        s3 = self.layer3(self.layer2(low))
        return low, s3, self.layer4(s3)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (Chen et al. 2018): 1×1, three dilated 3×3, image pooling,
    concatenated and projected to ``dim`` channels (the "bot_aspp" the memory reads from)."""

    def __init__(self, cin: int, dim: int, rates: tuple[int, ...]):
        super().__init__()
        branches = [nn.Sequential(nn.Conv2d(cin, dim, 1, bias=False), _bn(dim), nn.ReLU(inplace=True))]
        for r in rates:
            branches.append(nn.Sequential(nn.Conv2d(cin, dim, 3, padding=r, dilation=r, bias=False), _bn(dim),
                                          nn.ReLU(inplace=True)))
        self.branches = nn.ModuleList(branches)
        self.pool = nn.Sequential(nn.Conv2d(cin, dim, 1, bias=False), _bn(dim), nn.ReLU(inplace=True))
        self.project = nn.Sequential(nn.Conv2d(dim * (len(branches) + 1), dim, 1, bias=False), _bn(dim),
                                     nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(x.mean(dim=(2, 3), keepdim=True)).expand(-1, -1, *x.shape[2:])
        return self.project(torch.cat([pooled] + [b(x) for b in self.branches], 1))


class SegmentationNet(nn.Module):
    """DeepLabV3+ with an optional categorical memory on the ASPP features.

    ``forward(x: (B,3,H,W), labels=None, write=False)`` returns a dict with ``logits`` (B,K,H,W),
    ``aux`` (B,K,h3,w3), ``features`` (ASPP, B,D,h,w) and, with memory, ``scores`` (cosines,
    B,h,w,K), ``attention`` (B,h,w,K) and, when ``write`` and labels are given, ``new_memory``
    (K,D) written from this batch (differentiable, not yet stored).  ``memory=`` reads from the
    given slots (K,D) instead of the stored ones (meta-test); ``encode_only`` stops after ASPP.
    """

    def __init__(self, cfg: NetConfig):
        super().__init__()
        cfg = cfg.validate()
        self.cfg = cfg
        self.trunk = ResNetTrunk(cfg)
        self.aspp = ASPP(cfg.widths[3], cfg.aspp_dim, cfg.aspp_rates)
        self.memory = (CategoricalMemory(cfg.num_classes, cfg.aspp_dim, momentum=cfg.momentum,
                                         read_temperature=cfg.read_temperature, gumbel=cfg.gumbel_read)
                       if cfg.memory else None)
        self.low = nn.Sequential(nn.Conv2d(cfg.widths[0], cfg.low_dim, 1, bias=False), _bn(cfg.low_dim),
                                 nn.ReLU(inplace=True))
        self.decoder = nn.Sequential(
            nn.Conv2d(cfg.aspp_dim + cfg.low_dim, cfg.decoder_dim, 3, padding=1, bias=False), _bn(cfg.decoder_dim),
            nn.ReLU(inplace=True),
            nn.Conv2d(cfg.decoder_dim, cfg.decoder_dim, 3, padding=1, bias=False), _bn(cfg.decoder_dim),
            nn.ReLU(inplace=True),
            nn.Conv2d(cfg.decoder_dim, cfg.num_classes, 1),
        )
        aux_dim = max(cfg.widths[2] // 2, 16)
        self.aux_head = nn.Sequential(nn.Conv2d(cfg.widths[2], aux_dim, 3, padding=1, bias=False), _bn(aux_dim),
                                      nn.ReLU(inplace=True), nn.Dropout2d(0.1), nn.Conv2d(aux_dim, cfg.num_classes, 1))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")

    @property
    def num_classes(self) -> int:
        return self.cfg.num_classes

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(low-level, stage-3, ASPP features)`` of images ``x: (B,3,H,W)``.

        The images are made contiguous first: a channels-last batch (such as ``uint8 (N,H,W,3)``
        permuted) would reach oneDNN's channels-last kernels, whose backward pass of a strided 1×1
        convolution with fewer than 8 input channels corrupts the heap on AVX2 CPUs (torch 2.13)."""
        low, s3, s4 = self.trunk(x.contiguous())
        return low, s3, self.aspp(s4)

    def decode(self, low: torch.Tensor, feat: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        feat = F.interpolate(feat, size=low.shape[2:], mode="bilinear", align_corners=False)
        logits = self.decoder(torch.cat([feat, self.low(low)], 1))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None, write: bool = False,
                memory: torch.Tensor | None = None, encode_only: bool = False) -> dict[str, torch.Tensor]:
        low, s3, feat = self.encode(x)
        out: dict[str, torch.Tensor] = {"features": feat}
        if encode_only:
            return out
        if self.memory is not None:
            slots = self.memory.slots if memory is None else memory
            fused, attention, scores = self.memory.read(feat, slots.detach() if memory is None else slots)
            out.update(attention=attention, scores=scores)
            if write and labels is not None:
                out["new_memory"] = self.memory.write(feat, labels, slots.detach())
            feat = fused
        out["logits"] = self.decode(low, feat, x.shape[2:])
        if self.training:
            out["aux"] = self.aux_head(s3)
        return out


def build_model(cfg: NetConfig | dict[str, Any]) -> SegmentationNet:
    """A :class:`SegmentationNet` from a config or its dict form (as stored in config.json)."""
    return SegmentationNet(cfg if isinstance(cfg, NetConfig) else NetConfig.from_dict(cfg))


__all__ = ["ASPP", "BasicBlock", "Bottleneck", "NetConfig", "ResNetTrunk", "SegmentationNet", "build_model"]
