"""ViT-style encoder of a hand-drawn sketch image (Vitruvion §3.3, image conditioning).

A ``(B, 1, 128, 128)`` image in [0, 1] is cut into 16×16 patches (64 of them), each flattened and
linearly embedded, plus a learned patch-position embedding, then passed through non-causal
transformer blocks (Dosovitskiy et al. 2021). The primitive decoder cross-attends to the result.

Pixel normalisation matters here: a hand-drawn rendering is ~96 % white paper, so shifting pixels
by a constant (the earlier ``x − 0.5``) makes every patch embedding mostly the same vector
``−0.5·Σw`` and the thin strokes a small perturbation of it; at the quick scale the encoder then
collapsed to one output for every image (the spread of its output across a batch fell to 3 % of
its total spread, and shuffling the images across a batch left the loss unchanged to 4 digits).
Standardising with the renderings' own statistics (:data:`PIXEL_MEAN`, :data:`PIXEL_STD`) puts
the strokes at ~+5.5 and the paper at −0.2, and the encoder keeps the image's information.

The patch-position embedding starts as a 2-D sine/cosine table (:func:`sincos_2d`, as in MAE,
He et al. 2022) and stays learnable: where a stroke is is what the coordinate tokens ask, and a
random N(0, 0.02) start leaves position nearly invisible next to the stroke embeddings (at 1000
quick-scale steps the recall of primitives from images went from 0.11 to 0.27 with it).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from quintet.core.errors import QuintetError
from quintet.sketch.models.layers import Block

# Mean and standard deviation of the pixels of hand-drawn training renderings
# (``experiment.render_batch`` of procedural sketches, affine augmentation on): 0.038, 0.169.
PIXEL_MEAN = 0.04
PIXEL_STD = 0.17


def check_image(img: torch.Tensor, size: int) -> torch.Tensor:
    """Validate and normalise an image batch to float (B, 1, size, size) in [0, 1].

    Accepts (size, size), (B, size, size) or (B, 1, size, size); uint8 images are divided by 255.
    """
    if not torch.is_tensor(img):
        raise QuintetError(f"image must be a tensor, got {type(img).__name__}")
    if img.dim() == 2:
        img = img[None, None]
    elif img.dim() == 3:
        img = img[:, None]
    if img.dim() != 4 or img.shape[1] != 1:
        raise QuintetError(f"image must be one grey channel, got shape {tuple(img.shape)}")
    if tuple(img.shape[-2:]) != (size, size):
        raise QuintetError(f"image must be {size}×{size} pixels, got {img.shape[-1]}×{img.shape[-2]}")
    if img.dtype == torch.uint8:
        img = img.float() / 255.0
    return img.float()


def sincos_2d(n_side: int, d_model: int) -> torch.Tensor:
    """Fixed 2-D sine/cosine position table (n_side², d_model) in row-major patch order: a quarter of
    the channels each for sin/cos of the column and of the row, at frequencies π·100^(−i/q)·n_side."""
    if d_model % 4:
        raise ValueError(f"d_model {d_model} is not a multiple of 4 (needed for the 2-D position table)")
    q = d_model // 4
    freq = torch.exp(-math.log(100.0) * torch.arange(q) / q) * math.pi
    rows, cols = torch.meshgrid(torch.arange(n_side).float(), torch.arange(n_side).float(), indexing="ij")
    x, y = cols.reshape(-1, 1) * freq, rows.reshape(-1, 1) * freq
    return torch.cat([torch.sin(x), torch.cos(x), torch.sin(y), torch.cos(y)], dim=1)


class ImageEncoder(nn.Module):
    """Patch embedding + transformer encoder: (B, 1, H, W) -> (B, (H/p)·(W/p), d)."""

    def __init__(self, d_model: int, n_layers: int, n_heads: int, d_ff: int, image_size: int = 128, patch: int = 16, dropout: float = 0.0):
        super().__init__()
        if image_size % patch:
            raise ValueError(f"image size {image_size} is not a multiple of the patch size {patch}")
        self.image_size, self.patch = image_size, patch
        self.n_patches = (image_size // patch) ** 2
        self.proj = nn.Linear(patch * patch, d_model)
        self.pos = nn.Parameter(sincos_2d(image_size // patch, d_model)[None].clone())
        self.blocks = nn.ModuleList(Block(d_model, n_heads, d_ff, dropout) for _ in range(n_layers))
        self.ln = nn.LayerNorm(d_model)

    def patches(self, img: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) -> (B, n_patches, patch²), row-major patch order."""
        B, p = img.shape[0], self.patch
        x = img.unfold(2, p, p).unfold(3, p, p)  # B, 1, H/p, W/p, p, p
        return x.reshape(B, -1, p * p)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        img = check_image(img, self.image_size)
        x = self.proj((self.patches(img) - PIXEL_MEAN) / PIXEL_STD) + self.pos
        for block in self.blocks:
            x = block(x)
        return self.ln(x)
