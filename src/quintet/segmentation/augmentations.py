"""Photometric and geometric augmentations on ``[0, 1]`` image batches, as the authors' training
of Pin the Memory (Kim et al. 2022, Sec. 4.1) uses them.

* :func:`color_jitter`: brightness, contrast, saturation and hue jitter with the magnitudes of
  torchvision's ``ColorJitter(b, c, s, h)`` (factors drawn from ``[1 − x, 1 + x]``, a hue shift
  of ``[−h, h]`` turns); the hue shift is a rotation of the chroma plane in YIQ space, a close,
  cheap stand-in for the HSV shift torchvision makes.
* :func:`gaussian_blur`: a Gaussian blur with ``σ`` drawn from ``[0.15, 1.3]`` pixels per image
  (the authors' ``RandomGaussianBlur``).
* :func:`random_scale_crop`: rescale by a factor from ``[0.5, 2]`` and crop (or pad with the
  ignore label) back to the input size (the authors' ``RandomSizeAndCrop``).

Every draw comes from the given ``torch.Generator``, so a step's augmentation is reproducible.
Images are ``float (B, 3, H, W)`` in ``[0, 1]``; labels ``int64 (B, H, W)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from quintet.segmentation.losses import IGNORE_INDEX

_LUMA = (0.299, 0.587, 0.114)
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


@dataclass(frozen=True)
class Jitter:
    """Magnitudes of :func:`color_jitter` and the probability it is applied to an image."""

    brightness: float
    contrast: float
    saturation: float
    hue: float
    p: float = 1.0


#: the authors' standard photometric augmentation (``--color_aug``: ColorJitter(0.4, 0.4, 0.4, 0.1), p 0.5)
STANDARD_JITTER = Jitter(0.4, 0.4, 0.4, 0.1, p=0.5)
#: the authors' "meta" augmentation given to the first source domain (ColorJitter(0.8, 0.8, 0.8, 0.3))
META_JITTER = Jitter(0.8, 0.8, 0.8, 0.3)


def _uniform(n: int, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=g, dtype=torch.float64).float()


def _luma(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def rotate_hue(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Rotate the chroma (I, Q) plane of each image by ``2π·turns[b]`` (YIQ colour space)."""
    m = _RGB_TO_YIQ.to(x.dtype)
    yiq = torch.einsum("ij,bjhw->bihw", m, x)
    a = 2 * math.pi * turns.to(x.dtype)
    cos, sin = torch.cos(a).view(-1, 1, 1), torch.sin(a).view(-1, 1, 1)
    i, q = yiq[:, 1], yiq[:, 2]
    yiq = torch.stack([yiq[:, 0], cos * i - sin * q, sin * i + cos * q], 1)
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(m), yiq)


def color_jitter(x: torch.Tensor, jitter: Jitter, g: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, saturation, then hue jitter of ``x: (B, 3, H, W)`` in ``[0, 1]``,
    each image jittered with probability ``jitter.p``; the result is clipped to ``[0, 1]``."""
    n = x.shape[0]
    apply = (torch.rand(n, generator=g) < jitter.p).view(-1, 1, 1, 1)
    b = _uniform(n, 1 - jitter.brightness, 1 + jitter.brightness, g).view(-1, 1, 1, 1)
    c = _uniform(n, 1 - jitter.contrast, 1 + jitter.contrast, g).view(-1, 1, 1, 1)
    s = _uniform(n, 1 - jitter.saturation, 1 + jitter.saturation, g).view(-1, 1, 1, 1)
    h = _uniform(n, -jitter.hue, jitter.hue, g)
    y = (x * b).clamp(0, 1)
    grey = _luma(y).mean(dim=(2, 3), keepdim=True)
    y = ((y - grey) * c + grey).clamp(0, 1)
    y = ((y - _luma(y)) * s + _luma(y)).clamp(0, 1)
    y = rotate_hue(y, h).clamp(0, 1)
    return torch.where(apply, y, x)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """A normalised 1-d Gaussian of radius ``ceil(3σ)``."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, g: torch.Generator, sigma: tuple[float, float] = (0.15, 1.3)) -> torch.Tensor:
    """Blur every image of ``x: (B, 3, H, W)`` with its own ``σ ~ U(sigma)`` (separable, reflect
    padding)."""
    out = []
    for img, s in zip(x, _uniform(x.shape[0], *sigma, g).tolist()):
        k = gaussian_kernel(s).to(x.dtype)
        r = (len(k) - 1) // 2
        y = F.pad(img[None], (r, r, 0, 0), mode="reflect")
        y = F.conv2d(y, k.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
        y = F.pad(y, (0, 0, r, r), mode="reflect")
        out.append(F.conv2d(y, k.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)[0])
    return torch.stack(out)


def random_scale_crop(x: torch.Tensor, y: torch.Tensor, g: torch.Generator,
                      scale: tuple[float, float] = (0.5, 2.0)) -> tuple[torch.Tensor, torch.Tensor]:
    """Rescale each image (bilinear) and label (nearest) by ``s ~ U(scale)``, then take a random
    crop of the input size; where the rescaled image is smaller, it is padded (image 0, label
    ignore)."""
    h, w = x.shape[2:]
    xs, ys = [], []
    for img, lab, s in zip(x, y, _uniform(x.shape[0], *scale, g).tolist()):
        sh, sw = max(1, round(h * s)), max(1, round(w * s))
        img = F.interpolate(img[None], size=(sh, sw), mode="bilinear", align_corners=False)[0]
        lab = F.interpolate(lab[None, None].float(), size=(sh, sw), mode="nearest")[0, 0].long()
        ph, pw = max(0, h - sh), max(0, w - sw)
        img = F.pad(img, (0, pw, 0, ph), value=0.0)
        lab = F.pad(lab, (0, pw, 0, ph), value=IGNORE_INDEX)
        top = int(torch.randint(0, img.shape[1] - h + 1, (1,), generator=g))
        left = int(torch.randint(0, img.shape[2] - w + 1, (1,), generator=g))
        xs.append(img[:, top:top + h, left:left + w])
        ys.append(lab[top:top + h, left:left + w])
    return torch.stack(xs), torch.stack(ys)


def meta_augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """The authors' "meta" photometric augmentation: colour jitter (0.8, 0.8, 0.8, 0.3), then blur."""
    return gaussian_blur(color_jitter(x, META_JITTER, g), g)


__all__ = ["META_JITTER", "STANDARD_JITTER", "Jitter", "color_jitter", "gaussian_blur", "gaussian_kernel",
           "meta_augment", "random_scale_crop", "rotate_hue"]
