"""From :class:`~quintet.sketch.constraints.Sketch` objects to the models' token sequences and back
(through :mod:`quintet.sketch.tokens`), and 8-bit PNG input/output of the hand-drawn renderings
that condition the image model (Vitruvion §3.1–3.3, §4.3; the renderer itself is
:func:`quintet.sketch.io.render.render_hand_drawn`).

Constraints are re-ordered before tokenising: by the last primitive position they reference,
then the first, then type — each constraint appears as soon as its primitives exist, which gives
the constraint model a canonical order to learn.
"""

from __future__ import annotations

import numpy as np

from quintet.core.errors import QuintetError


def _ref_key(sketch, c) -> tuple:
    from quintet.sketch.tokens import REF_OFFSETS, primitive_token_positions

    starts = primitive_token_positions(sketch.primitives)
    pts = [starts[r.index] + REF_OFFSETS[sketch.primitives[r.index].type].get(r.part, 0) for r in c.refs]
    return (max(pts), min(pts), c.type.value)


def canonical_constraints(sketch):
    """A copy of ``sketch`` whose constraints are in the canonical order (see module docstring)."""
    from quintet.sketch.constraints import Sketch

    return Sketch(list(sketch.primitives), sorted(sketch.constraints, key=lambda c: _ref_key(sketch, c)), sketch.name)


def sketch_to_tokens(sketch, bits: int = 6) -> tuple[list[int], list[int]]:
    """``(primitive value tokens, constraint tokens)`` of a sketch (normalised and quantised)."""
    from quintet.sketch.tokens import encode_sketch, normalize_sketch, quantize_sketch

    norm, _ = normalize_sketch(sketch.validate())
    q = canonical_constraints(quantize_sketch(norm, bits))
    toks = encode_sketch(q, bits, normalize=False)
    return toks.primitives.val.tolist(), toks.constraints.val.tolist()


def tokens_to_sketch(pval: list[int], cval: list[int] | None = None, bits: int = 6, name: str = ""):
    """A :class:`Sketch` (normalised frame) of primitive tokens and optional constraint tokens.

    Raises :class:`QuintetError` when the tokens do not parse or a primitive is degenerate
    (zero-length line, zero-radius circle, arc through collinear points).
    """
    from quintet.sketch.tokens import decode_sketch

    sk = decode_sketch((pval, cval), bits, strict=True, name=name)
    for i, p in enumerate(sk.primitives):
        if p.type == "line" and p.length == 0:
            raise QuintetError(f"primitive {i}: line of zero length")
        if p.type == "circle" and p.r <= 0:
            raise QuintetError(f"primitive {i}: circle of zero radius")
        if p.type == "arc" and p.is_degenerate:
            raise QuintetError(f"primitive {i}: arc through collinear points")
    return sk


def constraint_tokens(constraints: list[tuple[int, list[int]]], n_special: int = 16) -> list[int]:
    """Decoded ``[(type, [positions])]`` (as :func:`quintet.sketch.models.sample.infer_constraints`
    returns) -> constraint value tokens."""
    out = [1]
    for k, refs in constraints:
        out.append(3 + k)
        out.extend(n_special + r for r in refs)
    return out + [2]


# ---------------------------------------------------------------------------------------------
# hand-drawn renderings (§3.3, §4.3): the image model is trained on the paper's renderer,
# :func:`quintet.sketch.io.render.render_hand_drawn` (Matérn-3/2 GP stroke noise, 359° circles,
# jittered points, affine augmentation); these helpers convert to and from 8-bit PNGs.


def render_uint8(sketch, rng: np.random.Generator | int | None = None, augment: bool = True) -> np.ndarray:
    """``(128, 128)`` uint8 hand-drawn rendering, ink = 255 on 0 (what :func:`load_png` returns)."""
    from quintet.sketch.io.render import render_hand_drawn

    return np.rint(render_hand_drawn(sketch, rng, augment=augment) * 255).astype(np.uint8)


def load_png(path) -> np.ndarray:
    """Read a 128×128 grayscale PNG as ink-on-black uint8 (inverting a white background).

    Errors name the file and what is wrong: not an image, the wrong mode (RGB/RGBA/palette: save
    it as 8-bit grayscale), or the wrong size.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            mode, size = im.mode, im.size
            if mode not in ("L", "1"):
                raise QuintetError(f"{path}: image mode {mode}; expected 8-bit grayscale (mode L)")
            if size != (128, 128):
                raise QuintetError(f"{path}: image is {size[0]}×{size[1]} pixels; expected 128×128")
            arr = np.asarray(im.convert("L"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise QuintetError(f"{path}: not a readable image ({exc})") from exc
    if arr.mean() > 127:  # black strokes on white paper
        arr = 255 - arr
    return arr


def save_png(path, img: np.ndarray, white_background: bool = True) -> None:
    """Write an ink-on-black image as a PNG (black on white by default), atomically."""
    import io

    from PIL import Image

    from quintet.core.io import atomic_write_bytes

    buf = io.BytesIO()
    Image.fromarray(255 - img if white_background else img, mode="L").save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
