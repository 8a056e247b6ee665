"""Procedural rendering of the demo world with PIL and numpy.

Shapes are drawn as masks at twice the output size (cheap anti-aliasing), then each domain
turns the mask into pixels its own way: shaded and textured (photo), outline on paper (sketch),
flat fill with a thick outline (cartoon), tiles (mosaic), glowing outline on dark (neon).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from p2w_lib.demo.world import COLOURS, GarmentSpec, ObjectSpec

SUPERSAMPLE = 2


def _rotate(points, cx, cy, angle):
    a = math.radians(angle)
    ca, sa = math.cos(a), math.sin(a)
    return [(cx + (x - cx) * ca - (y - cy) * sa, cy + (x - cx) * sa + (y - cy) * ca) for x, y in points]


def _poly(draw, cx, cy, r, pts, angle):
    draw.polygon(_rotate([(cx + r * x, cy + r * y) for x, y in pts], cx, cy, angle), fill=255)


def _star_points(n, inner):
    return [
        (
            math.cos(math.pi * k / n - math.pi / 2) * (1 if k % 2 == 0 else inner),
            math.sin(math.pi * k / n - math.pi / 2) * (1 if k % 2 == 0 else inner),
        )
        for k in range(2 * n)
    ]


def _heart_points():
    ts = np.linspace(0, 2 * math.pi, 48)
    return [
        (
            16 * math.sin(t) ** 3 / 17,
            -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)) / 17,
        )
        for t in ts
    ]


SHAPE_POLYGONS = {
    "square": [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)],
    "triangle": [(0, -0.95), (0.9, 0.75), (-0.9, 0.75)],
    "star": _star_points(5, 0.42),
    "heart": _heart_points(),
    "arrow": [(-0.9, -0.25), (0.2, -0.25), (0.2, -0.7), (0.95, 0), (0.2, 0.7), (0.2, 0.25), (-0.9, 0.25)],
    "cross": [
        (-0.3, -0.9),
        (0.3, -0.9),
        (0.3, -0.3),
        (0.9, -0.3),
        (0.9, 0.3),
        (0.3, 0.3),
        (0.3, 0.9),
        (-0.3, 0.9),
        (-0.3, 0.3),
        (-0.9, 0.3),
        (-0.9, -0.3),
        (-0.3, -0.3),
    ],
    "diamond": [(0, -0.95), (0.65, 0), (0, 0.95), (-0.65, 0)],
    "bolt": [(0.15, -0.95), (-0.55, 0.1), (-0.05, 0.1), (-0.25, 0.95), (0.55, -0.15), (0.05, -0.15), (0.3, -0.95)],
    "house": [(-0.7, -0.05), (0, -0.9), (0.7, -0.05), (0.7, 0.85), (-0.7, 0.85)],
    "tree": [(0, -0.95), (0.75, 0.35), (0.15, 0.35), (0.15, 0.9), (-0.15, 0.9), (-0.15, 0.35), (-0.75, 0.35)],
    "drop": [(0, -0.95)] + [(0.6 * math.cos(t), 0.3 + 0.6 * math.sin(t)) for t in np.linspace(-0.3, math.pi + 0.3, 20)],
}


def shape_mask(cls: str, size: int, cx: float, cy: float, r: float, angle: float) -> Image.Image:
    """Binary mask ('L') of one object at pixel centre (cx, cy) and radius r."""
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    if cls in SHAPE_POLYGONS:
        _poly(draw, cx, cy, r, SHAPE_POLYGONS[cls], angle)
    elif cls == "circle":
        draw.ellipse([cx - r * 0.85, cy - r * 0.85, cx + r * 0.85, cy + r * 0.85], fill=255)
    elif cls == "ring":
        draw.ellipse([cx - r * 0.9, cy - r * 0.9, cx + r * 0.9, cy + r * 0.9], fill=255)
        draw.ellipse([cx - r * 0.5, cy - r * 0.5, cx + r * 0.5, cy + r * 0.5], fill=0)
    elif cls == "moon":
        draw.ellipse([cx - r * 0.9, cy - r * 0.9, cx + r * 0.9, cy + r * 0.9], fill=255)
        ox, oy = _rotate([(cx + r * 0.45, cy - r * 0.2)], cx, cy, angle)[0]
        draw.ellipse([ox - r * 0.75, oy - r * 0.75, ox + r * 0.75, oy + r * 0.75], fill=0)
    elif cls == "cloud":
        for dx, dy, rr in [(-0.45, 0.15, 0.45), (0.0, -0.2, 0.55), (0.45, 0.12, 0.45), (0.0, 0.3, 0.4)]:
            px, py = _rotate([(cx + r * dx, cy + r * dy)], cx, cy, angle)[0]
            draw.ellipse([px - r * rr, py - r * rr, px + r * rr, py + r * rr], fill=255)
    elif cls == "key":
        _poly(
            draw,
            cx,
            cy,
            r,
            [
                (-0.2, -0.1),
                (0.95, -0.1),
                (0.95, 0.1),
                (0.8, 0.1),
                (0.8, 0.4),
                (0.6, 0.4),
                (0.6, 0.1),
                (0.45, 0.1),
                (0.45, 0.3),
                (0.3, 0.3),
                (0.3, 0.1),
                (-0.2, 0.1),
            ],
            angle,
        )
        kx, ky = _rotate([(cx - r * 0.5, cy)], cx, cy, angle)[0]
        draw.ellipse([kx - r * 0.42, ky - r * 0.42, kx + r * 0.42, ky + r * 0.42], fill=255)
        draw.ellipse([kx - r * 0.17, ky - r * 0.17, kx + r * 0.17, ky + r * 0.17], fill=0)
    else:
        raise ValueError(f"unknown demo class {cls!r}")
    return mask


def pattern_fill(size: int, colour: str, pattern: str, rng: np.random.Generator) -> np.ndarray:
    """[S, S, 3] float texture: the colour with stripes, dots or checks of a contrasting tone."""
    base = np.array(COLOURS[colour], dtype=np.float32)
    alt = np.where(base.mean() > 140, base * 0.45, base * 0.35 + 165)  # darker or lighter tone of it
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    period = size / rng.uniform(5.5, 7.5)
    phase = rng.uniform(0, period)
    if pattern == "striped":
        on = ((xx + yy + phase) % period) < period / 2
    elif pattern == "dotted":
        on = (((xx + phase) % period - period / 2) ** 2 + ((yy + phase) % period - period / 2) ** 2) < (
            period / 4.2
        ) ** 2
    elif pattern == "checked":
        on = (((xx + phase) // period + (yy + phase) // period) % 2) == 0
    else:
        on = np.zeros((size, size), dtype=bool)
    return np.where(on[..., None], alt, base)


def _noise(rng: np.random.Generator, sigma: float, size: int, channels: int = 3) -> np.ndarray:
    return rng.standard_normal((size, size, channels), dtype=np.float32) * sigma


def _noise_background(size: int, rng: np.random.Generator) -> np.ndarray:
    base = rng.uniform(60, 200, 3)
    gy, gx = np.mgrid[0:size, 0:size] / size
    grad = (gx * rng.uniform(-40, 40) + gy * rng.uniform(-40, 40))[..., None]
    blobs = np.asarray(
        Image.fromarray(rng.integers(0, 255, (6, 6), dtype=np.uint8)).resize((size, size), Image.BICUBIC),
        dtype=np.float32,
    )
    return base + grad + (blobs[..., None] - 128) * 0.25 + _noise(rng, 10, size)


def _edge(mask: Image.Image, width: int) -> np.ndarray:
    outer = mask.filter(ImageFilter.MaxFilter(width))
    inner = mask.filter(ImageFilter.MinFilter(width))
    return (np.asarray(outer, dtype=np.float32) - np.asarray(inner, dtype=np.float32)) / 255


def _compose(mask: Image.Image, fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    m = np.asarray(mask, dtype=np.float32)[..., None] / 255
    return fg * m + bg * (1 - m)


def _to_image(arr: np.ndarray, out_size: int) -> Image.Image:
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return img.resize((out_size, out_size), Image.BOX)


def render_object(spec: ObjectSpec, out_size: int = 64) -> Image.Image:
    size = out_size * SUPERSAMPLE
    rng = np.random.default_rng(spec.seed)
    r = size * (0.33 if spec.size == "large" else 0.22)
    mask = shape_mask(spec.cls, size, spec.x * size, spec.y * size, r, spec.angle)
    tex = pattern_fill(size, spec.colour, spec.pattern, rng)
    if spec.domain == "photo":
        gy, gx = np.mgrid[0:size, 0:size] / size
        shade = 1.2 - 0.45 * ((gx - spec.x + 0.3) ** 2 + (gy - spec.y + 0.3) ** 2) ** 0.5 * 2
        fg = tex * shade[..., None] + _noise(rng, 6, size)
        bg = _noise_background(size, rng)
        shadow = mask.transform(mask.size, Image.AFFINE, (1, 0, -size * 0.03, 0, 1, -size * 0.03)).filter(
            ImageFilter.GaussianBlur(3)
        )
        bg = bg * (1 - 0.45 * np.asarray(shadow, dtype=np.float32)[..., None] / 255)
        return _to_image(_compose(mask, fg, bg), out_size)
    if spec.domain == "sketch":
        paper = np.repeat(250 - np.abs(_noise(rng, 5, size, 1)), 3, axis=2)
        ink = np.clip(
            _edge(mask, 3)
            + 0.6
            * _edge(mask.transform(mask.size, Image.AFFINE, (1, 0, rng.uniform(-3, 3), 0, 1, rng.uniform(-3, 3))), 3),
            0,
            1,
        )
        return _to_image(paper * (1 - 0.85 * ink[..., None]), out_size)
    if spec.domain == "cartoon":
        bg = np.ones((size, size, 3)) * (rng.uniform(200, 250, 3))
        out = _compose(mask, tex, bg)
        line = np.clip(_edge(mask, 7), 0, 1)[..., None]
        return _to_image(out * (1 - line) + 15 * line, out_size)
    if spec.domain == "mosaic":
        bg = np.ones((size, size, 3)) * rng.uniform(150, 210)
        out = _compose(mask, np.array(COLOURS[spec.colour], dtype=np.float32) * np.ones((size, size, 3)), bg)
        tiles = 16  # a small object still spans about 7 tiles: a mosaic of it, not a blob
        small = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8)).resize((tiles, tiles), Image.BOX)
        big = np.asarray(small.resize((size, size), Image.NEAREST), dtype=np.float32)
        grout = (np.arange(size) % (size // tiles)) < 1  # thin grout lines between tiles
        big[grout, :] = 60
        big[:, grout] = 60
        return _to_image(big + _noise(rng, 4, size), out_size)
    if spec.domain == "neon":
        bg = np.ones((size, size, 3)) * np.array([12, 10, 28]) + _noise(rng, 4, size)
        edge = Image.fromarray((_edge(mask, 5) * 255).astype(np.uint8))
        glow = np.asarray(edge.filter(ImageFilter.GaussianBlur(6)), dtype=np.float32)[..., None] / 255
        core = np.asarray(edge, dtype=np.float32)[..., None] / 255
        colour = np.array(COLOURS[spec.colour], dtype=np.float32)
        return _to_image(bg + colour * np.clip(glow * 2.2, 0, 1) + (colour * 0.4 + 150) * core, out_size)
    raise ValueError(f"unknown demo domain {spec.domain!r}")


def garment_mask(spec: GarmentSpec, size: int) -> tuple[Image.Image, tuple[float, float]]:
    """Silhouette mask and the chest point where a logo goes."""
    s = size / 64
    mask = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(mask)
    cx = size / 2
    top, shoulder = 10 * s, 13 * s
    if spec.category == "dress":
        bottom = (58 if spec.length == "long" else 44) * s
        d.polygon(
            [
                (cx - 9 * s, top),
                (cx + 9 * s, top),
                (cx + 8 * s, 30 * s),
                (cx + 19 * s, bottom),
                (cx - 19 * s, bottom),
                (cx - 8 * s, 30 * s),
            ],
            fill=255,
        )
    else:
        half = 12 * s if spec.category == "shirt" else 14 * s
        bottom = (52 if spec.category == "shirt" else 48) * s
        d.rectangle([cx - half, top, cx + half, bottom], fill=255)
    arm = {"sleeveless": 0, "short": 9, "long": 28}[spec.sleeve] * s
    if arm:
        for side in (-1, 1):
            x0 = cx + side * 9 * s
            d.polygon(
                [
                    (x0, top),
                    (x0 + side * 7 * s, shoulder - 3 * s),
                    (x0 + side * (7 * s + arm * 0.35), shoulder + arm),
                    (x0 + side * (arm * 0.35), shoulder + arm + 2 * s),
                    (x0, shoulder + 6 * s),
                ],
                fill=255,
            )
    if spec.neckline == "v":
        d.polygon([(cx - 5 * s, top), (cx + 5 * s, top), (cx, top + 9 * s)], fill=0)
    else:
        d.ellipse([cx - 5 * s, top - 4 * s, cx + 5 * s, top + 4 * s], fill=0)
    return mask, (cx, top + 14 * s)


def render_garment(spec: GarmentSpec, out_size: int = 64) -> Image.Image:
    size = out_size * SUPERSAMPLE
    rng = np.random.default_rng(spec.seed)
    mask, (lx, ly) = garment_mask(spec, size)
    gy, gx = np.mgrid[0:size, 0:size] / size
    shade = (1.12 - 0.3 * np.abs(gx - 0.5) - 0.1 * gy)[..., None]
    fg = pattern_fill(size, spec.colour, spec.pattern, rng) * shade
    if spec.category == "shirt":  # collar line and button placket tell shirts from tops
        fg[int(size * 0.2) : int(size * 0.8), int(size / 2 - 1) : int(size / 2 + 1)] *= 0.45
    bg = np.ones((size, size, 3)) * rng.uniform(232, 252) + _noise(rng, 2, size)
    out = _compose(mask, fg, bg)
    out = out * (1 - 0.6 * _edge(mask, 3)[..., None])
    if spec.logo:
        logo = Image.new("L", (size, size), 0)
        _poly(ImageDraw.Draw(logo), lx, ly, size * 0.09, SHAPE_POLYGONS["star"], 0)
        out = _compose(logo, np.array(COLOURS[spec.logo], dtype=np.float32) * np.ones((size, size, 3)), out)
    return _to_image(out, out_size)
