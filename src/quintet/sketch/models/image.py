"""ViT-style encoder of a hand-drawn sketch image (Vitruvion §3.3, image conditioning).

A ``(B, 1, 128, 128)`` image in [0, 1] is cut into 16×16 patches (64 of them), each flattened and
linearly embedded, plus a learned patch-position embedding, then passed through non-causal
transformer blocks (Dosovitskiy et al. 2021). The primitive decoder cross-attends to the result.
"""

from __future__ import annotations

import torch
from torch import nn

from quintet.core.errors import QuintetError
from quintet.sketch.models.layers import Block


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


class ImageEncoder(nn.Module):
    """Patch embedding + transformer encoder: (B, 1, H, W) -> (B, (H/p)·(W/p), d)."""

    def __init__(self, d_model: int, n_layers: int, n_heads: int, d_ff: int, image_size: int = 128, patch: int = 16, dropout: float = 0.0):
        super().__init__()
        if image_size % patch:
            raise ValueError(f"image size {image_size} is not a multiple of the patch size {patch}")
        self.image_size, self.patch = image_size, patch
        self.n_patches = (image_size // patch) ** 2
        self.proj = nn.Linear(patch * patch, d_model)
        self.pos = nn.Parameter(torch.zeros(1, self.n_patches, d_model))
        nn.init.normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, d_ff, dropout) for _ in range(n_layers))
        self.ln = nn.LayerNorm(d_model)

    def patches(self, img: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) -> (B, n_patches, patch²), row-major patch order."""
        B, p = img.shape[0], self.patch
        x = img.unfold(2, p, p).unfold(3, p, p)  # B, 1, H/p, W/p, p, p
        return x.reshape(B, -1, p * p)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        img = check_image(img, self.image_size)
        x = self.proj(self.patches(img) - 0.5) + self.pos
        for block in self.blocks:
            x = block(x)
        return self.ln(x)
