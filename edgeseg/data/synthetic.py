"""Deterministic street-like scenes with exact masks: the quickstart and tests need no downloads.

Each image is drawn from its own seeded generator (recipe seed, split, index), so the same
recipe always sees the same pixels. Scenes are layered back to front (sky, buildings, trees,
pavement, road, poles, signs, cars) with per-object colour jitter, shading and sensor noise,
so the task is easy enough to learn in minutes but not trivially colour-thresholded.
"""

from __future__ import annotations

import zlib

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


def draw_scene(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    img = np.zeros((h, w, 3), dtype=np.float32)
    mask = np.zeros((h, w), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    horizon = int(h * rng.uniform(0.35, 0.55))

    def paint(region: np.ndarray, cls: int, base: tuple, jitter: float = 25.0) -> None:
        colour = np.clip(np.array(base, dtype=np.float32) + rng.normal(0, jitter, 3), 0, 255)
        img[region] = colour
        mask[region] = cls

    # Sky with a vertical gradient.
    sky = yy < horizon
    paint(sky, SKY, PALETTE[SKY])
    img[sky] *= (0.8 + 0.4 * (yy[sky] / max(horizon, 1)))[:, None]

    # Buildings: a skyline of boxes with window rows.
    x = 0
    while x < w:
        bw = int(rng.integers(w // 10, w // 4))
        top = int(rng.integers(max(horizon // 4, 1), horizon + 2))
        box = (yy >= top) & (yy < horizon + h // 10) & (xx >= x) & (xx < x + bw)
        paint(box, BUILDING, (rng.integers(60, 160),) * 3, 15)
        windows = box & ((yy // 6) % 2 == 0) & ((xx // 5) % 2 == 0)
        img[windows] *= 0.6
        x += bw + int(rng.integers(0, w // 12))

    # Trees: green blobs along the horizon.
    for _ in range(int(rng.integers(1, 4))):
        cx, cy = rng.integers(0, w), horizon - rng.integers(0, h // 8)
        r = rng.integers(h // 12, h // 5)
        blob = (xx - cx) ** 2 + ((yy - cy) * 1.3) ** 2 < r**2
        paint(blob, VEGETATION, PALETTE[VEGETATION], 20)

    # Pavement then road: a trapezoid narrowing to a vanishing point.
    ground = yy >= horizon + h // 10
    paint(ground, PAVEMENT, PALETTE[PAVEMENT], 30)
    vx = w * rng.uniform(0.35, 0.65)
    depth = (yy - horizon) / max(h - horizon, 1)
    half = w * (0.05 + 0.6 * depth)
    road = ground & (np.abs(xx - vx) < half)
    paint(road, ROAD, PALETTE[ROAD], 15)
    marking = road & (np.abs(xx - vx) < 1 + 2 * depth) & ((yy // 5) % 2 == 0)
    img[marking] = (230, 230, 230)  # markings stay "road", as in CamVid

    # Poles with an optional sign.
    for _ in range(int(rng.integers(1, 4))):
        px = int(rng.integers(0, w - 3))
        top = int(rng.integers(h // 8, horizon))
        bottom = int(rng.integers(horizon + h // 8, h))
        pole = (xx >= px) & (xx < px + max(2, w // 80)) & (yy >= top) & (yy < bottom)
        paint(pole, POLE, PALETTE[POLE], 10)
        if rng.random() < 0.6:
            s = max(4, h // 16)
            sign = (np.abs(xx - px) < s) & (yy >= top) & (yy < top + s)
            paint(sign, SIGN, PALETTE[SIGN], 30)

    # Cars on the road, nearer ones larger and lower.
    for _ in range(int(rng.integers(1, 4))):
        d = rng.uniform(0.2, 1.0)
        cy = int(horizon + h // 10 + d * (h - horizon - h // 10) * 0.8)
        cw, ch = int(w * (0.06 + 0.2 * d)), int(h * (0.04 + 0.12 * d))
        cx = int(vx + rng.uniform(-0.5, 0.5) * w * (0.05 + 0.6 * d))
        body = (np.abs(xx - cx) < cw // 2) & (yy > cy - ch) & (yy <= cy)
        paint(body, CAR, (rng.integers(0, 255), rng.integers(0, 255), rng.integers(0, 255)), 5)
        glass = body & (yy < cy - ch // 2) & (np.abs(xx - cx) < cw // 3)
        img[glass] *= 0.5

    # Global illumination and sensor noise.
    img *= rng.uniform(0.7, 1.2)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), mask
