"""Deterministic street-like scenes with exact masks: the quickstart and tests need no downloads.

Each image is drawn from its own seeded generator (recipe seed, split, index), so the same
recipe always sees the same pixels. Scenes are layered back to front (sky, buildings, trees,
pavement, road, poles, signs, cars) with per-object colour jitter, shading and sensor noise,
so the task is easy enough to learn in minutes but not trivially colour-thresholded.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

CLASS_NAMES = ("sky", "building", "road", "pavement", "vegetation", "car", "pole", "sign")
PALETTE = (
    (70, 130, 180), (70, 70, 70), (128, 64, 128), (244, 35, 232),
    (107, 142, 35), (0, 0, 142), (153, 153, 153), (220, 220, 0),
)  # fmt: skip
SKY, BUILDING, ROAD, PAVEMENT, VEGETATION, CAR, POLE, SIGN = range(8)


def generate(seed: int, split: str, count: int, height: int, width: int):
    """``count`` (image HxWx3 uint8, mask HxW uint8) pairs for ``split``."""
    split_salt = zlib.crc32(split.encode())
    return [draw_scene(np.random.default_rng([seed, split_salt, i]), height, width) for i in range(count)]


@dataclass
class _Canvas:
    """An image and its mask being painted, with the pixel grid and the horizon row."""

    rng: np.random.Generator
    h: int
    w: int

    def __post_init__(self) -> None:
        self.img = np.zeros((self.h, self.w, 3), dtype=np.float32)
        self.mask = np.zeros((self.h, self.w), dtype=np.uint8)
        self.yy, self.xx = np.mgrid[0 : self.h, 0 : self.w]
        self.horizon = int(self.h * self.rng.uniform(0.35, 0.55))

    def paint(self, region: np.ndarray, cls: int, base: tuple, jitter: float = 25.0) -> None:
        colour = np.clip(np.array(base, dtype=np.float32) + self.rng.normal(0, jitter, 3), 0, 255)
        self.img[region] = colour
        self.mask[region] = cls


def draw_scene(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """One street scene (uint8 HxWx3) and its class mask, drawn back to front."""
    c = _Canvas(rng, h, w)
    _sky_and_buildings(c)
    _trees(c)
    vx = _ground(c)
    _poles(c)
    _cars(c, vx)
    # Global illumination and sensor noise.
    c.img *= rng.uniform(0.7, 1.2)
    c.img += rng.normal(0, 6, c.img.shape)
    return np.clip(c.img, 0, 255).astype(np.uint8), c.mask


def _sky_and_buildings(c: _Canvas) -> None:
    """Sky with a vertical gradient; a skyline of boxes with window rows."""
    yy, xx, h, w, horizon = c.yy, c.xx, c.h, c.w, c.horizon
    sky = yy < horizon
    c.paint(sky, SKY, PALETTE[SKY])
    c.img[sky] *= (0.8 + 0.4 * (yy[sky] / max(horizon, 1)))[:, None]
    x = 0
    while x < w:
        bw = int(c.rng.integers(w // 10, w // 4))
        top = int(c.rng.integers(max(horizon // 4, 1), horizon + 2))
        box = (yy >= top) & (yy < horizon + h // 10) & (xx >= x) & (xx < x + bw)
        c.paint(box, BUILDING, (c.rng.integers(60, 160),) * 3, 15)
        windows = box & ((yy // 6) % 2 == 0) & ((xx // 5) % 2 == 0)
        c.img[windows] *= 0.6
        x += bw + int(c.rng.integers(0, w // 12))


def _trees(c: _Canvas) -> None:
    """Green blobs along the horizon."""
    for _ in range(int(c.rng.integers(1, 4))):
        cx, cy = c.rng.integers(0, c.w), c.horizon - c.rng.integers(0, c.h // 8)
        r = c.rng.integers(c.h // 12, c.h // 5)
        blob = (c.xx - cx) ** 2 + ((c.yy - cy) * 1.3) ** 2 < r**2
        c.paint(blob, VEGETATION, PALETTE[VEGETATION], 20)


def _ground(c: _Canvas) -> float:
    """Pavement, then a road narrowing to a vanishing point; returns the point's column."""
    yy, xx, h, w, horizon = c.yy, c.xx, c.h, c.w, c.horizon
    ground = yy >= horizon + h // 10
    c.paint(ground, PAVEMENT, PALETTE[PAVEMENT], 30)
    vx = w * c.rng.uniform(0.35, 0.65)
    depth = (yy - horizon) / max(h - horizon, 1)
    half = w * (0.05 + 0.6 * depth)
    road = ground & (np.abs(xx - vx) < half)
    c.paint(road, ROAD, PALETTE[ROAD], 15)
    marking = road & (np.abs(xx - vx) < 1 + 2 * depth) & ((yy // 5) % 2 == 0)
    c.img[marking] = (230, 230, 230)  # markings stay "road", as in CamVid
    return vx


def _poles(c: _Canvas) -> None:
    """Poles, some with a sign on top."""
    yy, xx, h, w, horizon = c.yy, c.xx, c.h, c.w, c.horizon
    for _ in range(int(c.rng.integers(1, 4))):
        px = int(c.rng.integers(0, w - 3))
        top = int(c.rng.integers(h // 8, horizon))
        bottom = int(c.rng.integers(horizon + h // 8, h))
        pole = (xx >= px) & (xx < px + max(2, w // 80)) & (yy >= top) & (yy < bottom)
        c.paint(pole, POLE, PALETTE[POLE], 10)
        if c.rng.random() < 0.6:
            s = max(4, h // 16)
            sign = (np.abs(xx - px) < s) & (yy >= top) & (yy < top + s)
            c.paint(sign, SIGN, PALETTE[SIGN], 30)


def _cars(c: _Canvas, vx: float) -> None:
    """Cars on the road, nearer ones larger and lower."""
    yy, xx, h, w, horizon = c.yy, c.xx, c.h, c.w, c.horizon
    for _ in range(int(c.rng.integers(1, 4))):
        d = c.rng.uniform(0.2, 1.0)
        cy = int(horizon + h // 10 + d * (h - horizon - h // 10) * 0.8)
        cw, ch = int(w * (0.06 + 0.2 * d)), int(h * (0.04 + 0.12 * d))
        cx = int(vx + c.rng.uniform(-0.5, 0.5) * w * (0.05 + 0.6 * d))
        body = (np.abs(xx - cx) < cw // 2) & (yy > cy - ch) & (yy <= cy)
        c.paint(body, CAR, (c.rng.integers(0, 255), c.rng.integers(0, 255), c.rng.integers(0, 255)), 5)
        glass = body & (yy < cy - ch // 2) & (np.abs(xx - cx) < cw // 3)
        c.img[glass] *= 0.5
