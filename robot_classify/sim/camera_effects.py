"""What a real colour camera does to an object's crop that pybullet's TinyRenderer does not.

The recipe's crops are rendered: exact colours, no noise, hard edges, no compression. A real
RealSense D4xx or Asus Xtion crop has the light's colour and the auto white balance's error in
it, an exposure and tone curve, shot and read noise, defocus and motion blur, JPEG or 4:2:0
chroma loss from the driver or the bag, and, for objects far away, fewer pixels than 32x32.

Each effect is a pure function `(crop, rng) -> crop` of a uint8 RGB crop (H, W, 3), with its
level range in `LEVELS` (drawn uniformly with `rng`, so a seed fixes the result). They work at
crop scale; the noise, JPEG and chroma effects first upsample the crop by a random factor in
`NATIVE_SCALE` (an object of 32 to 100 camera pixels) so that they act at the camera's pixel
scale and are averaged down again as `runtime.patches.crop_patch` does.

`augment` replaces crops by their augmented copy with probability `p`, keeping the crops'
grey background (`crop_patch` greys everything outside the object mask: the camera never
touches it). Which effects the recipe uses was decided on real frames (doc/real_frames.md).
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

Effect = Callable[[np.ndarray, np.random.Generator], np.ndarray]

BACKGROUND = 128  # runtime.patches.crop_patch's grey outside the object mask
NATIVE_SCALE = (1.0, 3.0)  # camera pixels per crop pixel for the effects that act at the camera's scale

LEVELS: dict[str, dict[str, tuple[float, float]]] = {
    # Light colour 2,700-6,500 K that auto white balance left partly uncorrected: red and blue gains
    # move against each other (temperature) plus a small green-magenta tint.
    "white_balance": {"temperature": (-0.2, 0.2), "tint": (-0.05, 0.05)},
    # Auto exposure off by up to one stop either way, and a tone curve other than the render's.
    "exposure": {"stops": (-1.0, 0.7), "gamma": (0.8, 1.25)},
    # Shot (variance = gain x signal, DN) and read noise (sigma, DN) of D4xx/Xtion colour sensors
    # at indoor light, at the camera's pixel scale.
    "sensor_noise": {"shot_gain": (0.05, 0.6), "read_sigma": (1.0, 4.0)},
    # Defocus (Gaussian sigma, crop pixels) or motion (line length, crop pixels).
    "blur": {"defocus_sigma": (0.3, 1.0), "motion_length": (1.5, 3.0)},
    "jpeg": {"quality": (40.0, 90.0)},  # a compressed image topic, at the camera's pixel scale
    "chroma": {"factor": (2.0, 2.0)},  # 4:2:0: colour at half resolution both ways
    "low_resolution": {"factor": (1.5, 3.0)},  # an object far away: 11-21 px across, upsampled to the crop
    "saturation": {"scale": (0.6, 1.3)},
    "glare": {"strength": (0.3, 0.9), "radius": (0.06, 0.2)},  # a specular highlight; radius as a share of the side
}


def _draw(effect: str, name: str, rng: np.random.Generator) -> float:
    lo, hi = LEVELS[effect][name]
    return float(rng.uniform(lo, hi)) if hi > lo else float(lo)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _check(crop: np.ndarray) -> np.ndarray:
    if not isinstance(crop, np.ndarray) or crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3:
        raise ValueError(f"a crop must be a uint8 (H, W, 3) RGB array, got "
                         f"{getattr(crop, 'dtype', type(crop))} {getattr(crop, 'shape', '')}")
    return crop


def _at_native_scale(crop: np.ndarray, rng: np.random.Generator, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """`fn` applied at the camera's pixel scale: upsampled by a random factor, then averaged
    back down (INTER_AREA, as crop_patch does)."""
    h, w = crop.shape[:2]
    s = float(rng.uniform(*NATIVE_SCALE))
    big = cv2.resize(crop, (max(w, round(w * s)), max(h, round(h * s))), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(fn(big), (w, h), interpolation=cv2.INTER_AREA)


def white_balance(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-channel gains: red up and blue down for warm light (and the reverse), green for tint."""
    t, g = _draw("white_balance", "temperature", rng), _draw("white_balance", "tint", rng)
    gains = np.array([1.0 + t, 1.0 + g, 1.0 - t], np.float32)
    return _to_uint8(_check(crop).astype(np.float32) * gains)


def exposure(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gain of 2**stops and a gamma on [0, 1]; highlights clip as a sensor's do."""
    stops, gamma = _draw("exposure", "stops", rng), _draw("exposure", "gamma", rng)
    x = _check(crop).astype(np.float32) / 255.0
    return _to_uint8(255.0 * (x ** gamma) * 2.0 ** stops)


def sensor_noise(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shot noise (Poisson-like: variance grows with the signal) plus Gaussian read noise."""
    a, b = _draw("sensor_noise", "shot_gain", rng), _draw("sensor_noise", "read_sigma", rng)

    def noisy(img: np.ndarray) -> np.ndarray:
        x = img.astype(np.float32)
        sigma = np.sqrt(a * x + b * b)
        return _to_uint8(x + sigma * rng.standard_normal(x.shape).astype(np.float32))

    return _at_native_scale(_check(crop), rng, noisy)


def blur(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Defocus (Gaussian) or, half of the time, motion along a random direction."""
    _check(crop)
    if rng.random() < 0.5:
        s = _draw("blur", "defocus_sigma", rng)
        return cv2.GaussianBlur(crop, (0, 0), s, borderType=cv2.BORDER_REPLICATE)
    length, angle = _draw("blur", "motion_length", rng), float(rng.uniform(0.0, np.pi))
    n = int(np.ceil(length)) | 1
    k = np.zeros((n, n), np.float32)
    c = n // 2
    for t in np.linspace(-length / 2, length / 2, 4 * n):
        k[int(round(c + t * np.sin(angle))), int(round(c + t * np.cos(angle)))] = 1.0
    return cv2.filter2D(crop, -1, k / k.sum(), borderType=cv2.BORDER_REPLICATE)


def jpeg(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """JPEG compression at a random quality (OpenCV's encoder: 4:2:0 chroma too)."""
    q = int(round(_draw("jpeg", "quality", rng)))

    def compress(img: np.ndarray) -> np.ndarray:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
        if not ok:
            raise RuntimeError("OpenCV could not encode a JPEG")
        return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)

    return _at_native_scale(_check(crop), rng, compress)


def chroma(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Colour stored at a lower resolution than brightness (YUV 4:2:0, and Bayer demosaicing)."""
    f = _draw("chroma", "factor", rng)

    def subsample(img: np.ndarray) -> np.ndarray:
        ycc = cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb)
        h, w = img.shape[:2]
        small = cv2.resize(ycc[..., 1:], (max(1, round(w / f)), max(1, round(h / f))), interpolation=cv2.INTER_AREA)
        ycc[..., 1:] = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)

    return _at_native_scale(_check(crop), rng, subsample)


def low_resolution(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Seen from far away: fewer pixels, upsampled back to the crop's size (as crop_patch does
    for a box smaller than the crop)."""
    f = _draw("low_resolution", "factor", rng)
    h, w = _check(crop).shape[:2]
    small = cv2.resize(crop, (max(1, round(w / f)), max(1, round(h / f))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def saturation(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Colours paler or stronger (a camera's colour matrix and tone settings)."""
    s = _draw("saturation", "scale", rng)
    x = _check(crop).astype(np.float32)
    grey = x @ np.array([0.299, 0.587, 0.114], np.float32)
    return _to_uint8(grey[..., None] + s * (x - grey[..., None]))


def glare(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A specular highlight: a soft white ellipse blended in at a random place."""
    h, w = _check(crop).shape[:2]
    strength, radius = _draw("glare", "strength", rng), _draw("glare", "radius", rng) * max(h, w)
    cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
    elongation = rng.uniform(1.0, 3.0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if rng.random() < 0.5:
        yy, xx, cy, cx = xx, yy, cx, cy  # the long axis vertical or horizontal
    alpha = strength * np.exp(-0.5 * (((xx - cx) / (radius * elongation)) ** 2 + ((yy - cy) / radius) ** 2))
    x = crop.astype(np.float32)
    return _to_uint8(x + alpha[..., None] * (255.0 - x))


# In the order light meets them: the scene (glare), the optics (distance, blur), the sensor's
# colour and exposure, its noise, then the driver's and the bag's compression.
EFFECTS: dict[str, Effect] = {
    "glare": glare, "low_resolution": low_resolution, "blur": blur, "white_balance": white_balance,
    "exposure": exposure, "saturation": saturation, "sensor_noise": sensor_noise, "chroma": chroma, "jpeg": jpeg,
}


def apply_effects(crop: np.ndarray, names: list[str] | tuple[str, ...], rng: np.random.Generator) -> np.ndarray:
    """The named effects in the order light meets them (`EFFECTS`' order, whatever the order of
    `names`), on the object's pixels only: pixels of the
    exact background grey stay grey."""
    unknown = [n for n in names if n not in EFFECTS]
    if unknown:
        raise ValueError(f"unknown camera effect(s) {unknown}; known: {list(EFFECTS)}")
    background = (_check(crop) == BACKGROUND).all(axis=-1)
    out = crop
    for name, fn in EFFECTS.items():
        if name in names:
            out = fn(out, rng)
    out = out.copy() if out is crop else out
    out[background] = BACKGROUND
    return out


def augment(images: np.ndarray, names: list[str] | tuple[str, ...], seed: int, p: float = 0.5) -> np.ndarray:
    """A copy of `images` (N, H, W, 3) with each crop replaced, with probability `p`, by its
    `apply_effects` version; crop i's draws come from its own stream of `seed`, so a crop's
    result does not depend on the others."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p!r}")
    out = images.copy()
    if not names or p == 0.0:
        return out
    streams = np.random.SeedSequence(seed).spawn(len(images))
    for i, ss in enumerate(streams):
        rng = np.random.default_rng(ss)
        if rng.random() < p:
            out[i] = apply_effects(images[i], names, rng)
    return out
