"""From :class:`~quintet.sketch.constraints.Sketch` objects to the models' token sequences and back
(through :mod:`quintet.sketch.tokens`), and the hand-drawn renderings that condition the image
model (Vitruvion §3.1–3.3, §4.3).

Constraints are re-ordered before tokenising: by the last primitive position they reference,
then the first, then type — each constraint appears as soon as its primitives exist, which gives
the constraint model a canonical order to learn.
"""

from __future__ import annotations

import math

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
    """Decoded ``[(type, [positions])]`` (as :func:`quintet.sketch.sample.infer_constraints`
    returns) -> constraint value tokens."""
    out = [1]
    for k, refs in constraints:
        out.append(3 + k)
        out.extend(n_special + r for r in refs)
    return out + [2]


def normalization(sketch) -> tuple[float, float, float]:
    """``(cx, cy, side)`` of the bounding box: a point maps to ``((x − cx)/side, (y − cy)/side)``."""
    x0, y0, x1, y1 = sketch.bbox()
    side = max(x1 - x0, y1 - y0)
    return (x0 + x1) / 2, (y0 + y1) / 2, side if side > 0 else 1.0


# ---------------------------------------------------------------------------------------------
# hand-drawn renderings (§4.3: the image model is trained on noisy renderings)


def _polyline(p, n: int = 48) -> np.ndarray:
    if p.type == "line":
        t = np.linspace(0, 1, n)[:, None]
        return np.array(p.start) * (1 - t) + np.array(p.end) * t
    if p.type == "circle":
        a = np.linspace(0, 2 * np.pi, 2 * n)
        return np.stack([p.cx + p.r * np.cos(a), p.cy + p.r * np.sin(a)], 1)
    if p.type == "arc":
        if p.is_degenerate:
            return np.array([p.start, p.end])
        a0, a1 = p.angles
        cx, cy = p.center
        a = np.linspace(a0, a1, n)
        return np.stack([cx + p.radius * np.cos(a), cy + p.radius * np.sin(a)], 1)
    return np.array([(p.x, p.y)])


def render_hand_drawn(sketch, size: int = 128, rng: np.random.Generator | None = None, noise: float = 1.0,
                      margin: int = 8) -> np.ndarray:
    """A (size, size) uint8 image, ink = 255 on 0, of ``sketch`` as if drawn by hand.

    Each stroke is displaced along its normal by a smooth random wobble (a few low-frequency
    sinusoids, amplitude ≈ ``noise`` pixels), the whole drawing gets a small random affine jitter,
    and stroke widths vary; ``noise=0`` gives a clean rendering. Points are small dots;
    construction geometry is drawn dashed.
    """
    from PIL import Image, ImageDraw

    rng = rng or np.random.default_rng()
    cx, cy, s = normalization(sketch)
    img = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(img)
    span = size - 2 * margin
    ang = rng.normal(0, 0.03 * noise)
    A = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]]) * (1 + rng.normal(0, 0.02 * noise))
    shift = rng.normal(0, 1.0 * noise, 2)

    def to_px(xy: np.ndarray) -> np.ndarray:
        u = (xy - [cx, cy]) / s
        u = u @ A.T
        px = (u[:, 0] + 0.5) * span + margin + shift[0]
        py = (0.5 - u[:, 1]) * span + margin + shift[1]
        return np.stack([px, py], 1)

    for p in sketch.primitives:
        pts = to_px(_polyline(p))
        width = max(1, int(round(rng.uniform(1.0, 1.0 + 1.5 * min(noise, 1.0)))))
        if len(pts) == 1:
            x, y = pts[0]
            draw.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], fill=255)
            continue
        if noise > 0:
            d = np.gradient(pts, axis=0)
            nrm = np.stack([-d[:, 1], d[:, 0]], 1)
            nrm /= np.linalg.norm(nrm, axis=1, keepdims=True) + 1e-9
            t = np.linspace(0, 1, len(pts))
            wob = sum(rng.normal(0, noise / (k + 1)) * np.sin(np.pi * (k + 1) * t + rng.uniform(0, np.pi)) for k in range(3))
            pts = pts + nrm * wob[:, None]
        seq = [tuple(q) for q in pts]
        if p.construction:
            for j in range(0, len(seq) - 1, 4):
                draw.line(seq[j : j + 3], fill=255, width=1)
        else:
            draw.line(seq, fill=255, width=width, joint="curve")
    return np.asarray(img, dtype=np.uint8)


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
