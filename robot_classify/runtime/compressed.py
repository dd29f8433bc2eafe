"""sensor_msgs/CompressedImage <-> numpy: image_transport's `compressed` and `compressedDepth` formats.

Robots record and stream compressed topics (raw 640x480 RGB-D at 30 Hz is ~45 MB/s). The wire
formats, as `image_transport_plugins` defines them (read from its source; this is our own code):

- `compressed` (colour, `<topic>/compressed`): `format` is "<encoding>; jpeg compressed bgr8" or
  "<encoding>; png compressed bgr8" (older publishers: just "jpeg"/"png"); `data` is a whole JPEG
  or PNG file whose pixels are BGR (or grey). A 16-bit grey PNG ("16UC1; png compressed ") carries
  depth losslessly.
- `compressedDepth` (depth, `<topic>/compressedDepth`): `format` is "16UC1; compressedDepth png",
  "32FC1; compressedDepth rvl" (older: "16UC1; compressedDepth" = png); `data` is a 12-byte
  little-endian config header {int32 format (0 = inverse depth), float32 depthParam[2]} and then
  a 16-bit grey PNG, or RVL: uint32 cols, uint32 rows, then Wilson's RVL code (see `rvl_decode`).
  16UC1 carries millimetres as they are; 32FC1 carries metres quantised as inverse depth,
  `v = uint16(A / d + B)` with A = q (q + 1), B = 1 - A / depth_max, decoded `d = A / (v - B)`
  (v = 0: no depth, NaN), A and B from the header.

ROS-free (the node, bags and benches share it). Error messages carry no per-message numbers but
sizes, so the node's warnings, throttled per distinct message, stay throttled on a broken stream.
Every decode checks the size the data claims
before decoding (PNG/JPEG headers, RVL's cols x rows) against `max_pixels`, so a small message
claiming a huge image (a decompression bomb) is refused without allocating it, and checks the
decoded array's shape and type. Problems raise `CompressedImageError` (a ValueError) naming them.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import numpy as np

MAX_PIXELS = 4096 * 4096  # without camera_info: no camera sends more (a 4K frame is 8.3 M)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8"  # a JPEG's first two bytes (start of image)
PNG_END = b"IEND\xaeB`\x82"
CONFIG_HEADER = struct.Struct("<iff")  # compressedDepth: format (0 = INV_DEPTH), depthParam[0], depthParam[1]
INV_DEPTH = 0
DEPTH_MAX = 10.0  # image_transport's defaults for compressedDepth publishers (metres)
DEPTH_QUANTIZATION = 100.0
COLOR_CODECS = ("jpeg", "png")
DEPTH_CODECS = ("png", "rvl")


class CompressedImageError(ValueError):
    """Compressed data this package cannot or will not decode: malformed, truncated, too large, or
    a format it does not support. The message names which."""


def is_compressed(msg) -> bool:
    """A sensor_msgs/CompressedImage (rclpy's or rosbags'): it has `format`, an Image has `encoding`."""
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


# ----------------------------------------------------------------------------------------- sizes
def png_header(data: bytes | memoryview) -> tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) from a PNG's IHDR, without decoding."""
    head = bytes(data[:26])
    if head[:8] != PNG_SIGNATURE:
        raise CompressedImageError("data is not a PNG (no PNG signature)")
    if len(head) < 26 or head[12:16] != b"IHDR":
        raise CompressedImageError("PNG is truncated or malformed (no IHDR header)")
    width, height = struct.unpack(">II", head[16:24])
    return width, height, head[24], head[25]


def jpeg_size(data: bytes | memoryview) -> tuple[int, int]:
    """(width, height) from a JPEG's frame header (SOFn), walking the markers before it."""
    buf = bytes(data[:65536]) if len(data) > 65536 else bytes(data)  # headers come first; EXIF may be ~64 KB
    if buf[:2] != JPEG_SOI:
        raise CompressedImageError("data is not a JPEG (no SOI marker)")
    i = 2
    while i + 4 <= len(buf):
        if buf[i] != 0xFF:
            raise CompressedImageError("JPEG is malformed (a marker is missing)")
        marker = buf[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        length = int.from_bytes(buf[i + 2:i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOF0..SOF15 but DHT, JPG, DAC
            if i + 9 > len(buf):
                break
            height, width = struct.unpack(">HH", buf[i + 5:i + 9])
            return width, height
        if marker in (0xDA, 0xD9):  # scan data or the end before any frame header
            break
        i += 2 + length
    raise CompressedImageError("JPEG is truncated or malformed (no frame header)")


def _check_size(width: int, height: int, max_pixels: int, what: str) -> None:
    if width <= 0 or height <= 0:
        raise CompressedImageError(f"{what} claims an empty {width}x{height} image")
    if width * height > max_pixels:
        raise CompressedImageError(f"{what} claims {width}x{height} pixels, more than the {max_pixels} allowed "
                                   "(camera_info's size, else MAX_PIXELS): refused before decoding")


def truncation(data: bytes | memoryview, codec: str) -> str | None:
    """Why `data` ("png" or "jpeg") is cut short, or None where its end marker is there.

    OpenCV decodes a truncated JPEG without a word (grey below the cut), and libpng prints a line
    of its own to stderr for a truncated PNG, before the caller can say what went wrong; so the
    end marker is checked first. Bytes after it are padding (USB cameras send fixed-size MJPEG
    buffers, as large as a raw frame: w x h x 2 bytes)."""
    raw = np.frombuffer(data, np.uint8)
    used = len(raw) - int(np.argmax(raw[::-1] != 0)) if raw.any() else 0  # up to the last non-zero byte
    end = bytes(raw[max(0, used - 12):used])
    if codec == "png" and PNG_END not in end[-12:]:
        return "no IEND chunk"
    if codec == "jpeg" and not end.endswith(b"\xff\xd9"):
        # Some drivers fill the rest of a fixed-size buffer with other bytes than zeros (found from
        # outside). The image is whole if an end-of-image marker follows its last start-of-scan:
        # scan data stuffs every 0xFF byte, so a scan cut short holds no marker after its start.
        whole = bytes(data)
        if whole.rfind(b"\xff\xd9") < max(whole.rfind(b"\xff\xda"), 0):
            return "no end-of-image marker after its last scan"
    return None


def _imdecode(data: bytes | memoryview, codec: str, what: str) -> np.ndarray:
    """cv2.imdecode, IMREAD_UNCHANGED (bit depth and channels as encoded; no EXIF rotation)."""
    cut = truncation(data, codec)
    if cut:
        raise CompressedImageError(f"{what} is truncated ({cut})")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise CompressedImageError(f"{what} does not decode (corrupt data)")
    return img


# ----------------------------------------------------------------------------------------- colour
@dataclass(frozen=True)
class ColorFormat:
    encoding: str  # of the image before compression ("" for old publishers)
    codec: str  # jpeg | png
    rgb_order: bool  # pixels stored RGB ("compressed rgb8"); image_transport stores BGR


def parse_color_format(fmt: str) -> ColorFormat:
    encoding, sep, rest = fmt.partition(";")
    if not sep:  # old compressed_image_transport: "jpeg" / "png" alone
        encoding, rest = "", fmt
    words = rest.lower()
    codecs = [c for c in COLOR_CODECS if c in words]
    if len(codecs) != 1:
        raise CompressedImageError(f"unsupported compressed colour format {fmt!r} (supported: "
                                   "'<encoding>; jpeg compressed bgr8', '<encoding>; png compressed bgr8')")
    return ColorFormat(encoding.strip(), codecs[0], "compressed rgb" in words)


def decode_color(fmt: str, data: bytes | memoryview, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A `compressed` colour image -> RGB uint8 (H, W, 3)."""
    f = parse_color_format(fmt)
    what = f"compressed {f.codec.upper()}"
    if f.codec == "png":
        width, height, bits, _ = png_header(data)
        if bits != 8:
            raise CompressedImageError(f"{what} has {bits}-bit samples; colour must be 8-bit")
    else:
        width, height = jpeg_size(data)
    _check_size(width, height, max_pixels, what)
    img = _imdecode(data, f.codec, what)
    if img.shape[:2] != (height, width) or img.dtype != np.uint8:
        raise CompressedImageError(f"{what} decoded to {img.dtype}{img.shape}, its header said {width}x{height} "
                                   "8-bit")
    channels = 1 if img.ndim == 2 else img.shape[2]
    if channels == 1:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if channels == 3:
        return img if f.rgb_order else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if channels == 4:
        return cv2.cvtColor(img, cv2.COLOR_RGBA2RGB if f.rgb_order else cv2.COLOR_BGRA2RGB)
    raise CompressedImageError(f"{what} has {channels} channels (1, 3 or 4 expected)")


def encode_color(rgb: np.ndarray, codec: str = "jpeg", quality: int = 90, png_level: int = 3,
                 encoding: str = "rgb8") -> tuple[str, bytes]:
    """(format, data) as compressed_image_transport publishes an rgb8 image: BGR pixels."""
    if codec not in COLOR_CODECS:
        raise ValueError(f"colour codec must be one of {COLOR_CODECS}, got {codec!r}")
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {rgb.dtype}{rgb.shape}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if codec == "jpeg" else [cv2.IMWRITE_PNG_COMPRESSION,
                                                                              int(png_level)]
    ok, buf = cv2.imencode(".jpg" if codec == "jpeg" else ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"OpenCV could not encode {codec}")
    return f"{encoding}; {codec} compressed bgr8", buf.tobytes()


# ----------------------------------------------------------------------------------------- depth
@dataclass(frozen=True)
class DepthFormat:
    encoding: str  # 16UC1 (mm) or 32FC1 (m)
    codec: str  # png | rvl
    header: bool  # compressedDepth's 12-byte config header precedes the payload


def parse_depth_format(fmt: str) -> DepthFormat:
    """compressedDepth formats, and a 16-bit PNG through the plain `compressed` transport."""
    encoding, sep, rest = fmt.partition(";")
    encoding = encoding.strip()
    if not sep and "compressed" in encoding:  # found from outside: "compressedDepth of 'compressedDepth' images"
        raise CompressedImageError(f"format {fmt!r} names no image encoding: compressedDepth formats read "
                                   "'16UC1; compressedDepth png' (or rvl, or 32FC1)")
    if not sep:  # old compressed_depth_image_transport: the encoding alone, PNG implied
        rest = " compressedDepth"
    words = rest.strip()
    if "compressedDepth" in words:
        tail = words.split("compressedDepth", 1)[1].strip()
        codec = tail.split()[0] if tail else "png"
        if codec not in DEPTH_CODECS:
            raise CompressedImageError(f"unsupported compressedDepth codec {codec!r} in {fmt!r} (supported: png, rvl)")
        if encoding not in ("16UC1", "32FC1"):
            raise CompressedImageError(f"compressedDepth of {encoding!r} images is not supported (16UC1, 32FC1)")
        return DepthFormat(encoding, codec, True)
    if "png" in words:
        if encoding not in ("16UC1", "mono16"):
            raise CompressedImageError(f"depth through the compressed transport must be 16UC1 PNG, got {fmt!r}")
        return DepthFormat("16UC1", "png", False)
    if "jpeg" in words:
        raise CompressedImageError(f"depth as JPEG ({fmt!r}) is lossy and 8-bit: publish it as compressedDepth")
    raise CompressedImageError(f"unsupported compressed depth format {fmt!r} (supported: "
                               "'16UC1; compressedDepth png|rvl', '32FC1; compressedDepth png|rvl', '16UC1; png "
                               "compressed')")


def decode_depth(fmt: str, data: bytes | memoryview, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A `compressedDepth` (or 16-bit PNG `compressed`) depth image -> uint16 mm (16UC1) or float32 m
    (32FC1, NaN where the publisher had no depth or depth beyond its depth_max)."""
    f = parse_depth_format(fmt)
    data = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    quant = (0.0, 0.0)
    if f.header:
        if len(data) <= CONFIG_HEADER.size:
            raise CompressedImageError("compressedDepth data is shorter than its 12-byte header and a payload")
        if bytes(data[:8]) == PNG_SIGNATURE:
            raise CompressedImageError("compressedDepth data starts with a PNG image, not its 12-byte header: a "
                                       "16-bit PNG sent through the plain compressed transport has the format "
                                       "'16UC1; png compressed'")
        kind, a, b = CONFIG_HEADER.unpack(bytes(data[:CONFIG_HEADER.size]))
        if kind != INV_DEPTH:
            raise CompressedImageError(f"compressedDepth header has format {kind}, expected {INV_DEPTH} (inverse depth)")
        quant = (a, b)
        if f.encoding == "32FC1" and not (np.isfinite(a) and np.isfinite(b) and a > 0):
            raise CompressedImageError(f"compressedDepth header has invalid quantisation parameters A={a}, B={b}")
        data = data[CONFIG_HEADER.size:]
    what = f"compressed depth {f.codec.upper()}"
    if f.codec == "rvl":
        if len(data) < 8:
            raise CompressedImageError("RVL data is truncated (no size)")
        cols, rows = struct.unpack("<II", bytes(data[:8]))
        # The claimed size is bounded (camera_info's, else MAX_PIXELS); not by the data's length:
        # RVL codes a run of zeros in a few nibbles, so a frame with little depth is tiny.
        _check_size(cols, rows, max_pixels, what)
        inv = rvl_decode(data[8:], rows * cols).reshape(rows, cols)
    else:
        width, height, bits, colour_type = png_header(data)
        if bits != 16 or colour_type != 0:
            raise CompressedImageError(f"{what} must be 16-bit grey, has {bits}-bit samples of colour type "
                                       f"{colour_type}")
        _check_size(width, height, max_pixels, what)
        inv = _imdecode(data, "png", what)
        if inv.shape != (height, width) or inv.dtype != np.uint16:
            raise CompressedImageError(f"{what} decoded to {inv.dtype}{inv.shape}, its header said {width}x{height} "
                                       "16-bit grey")
    if f.encoding == "16UC1":
        return inv
    a, b = np.float32(quant[0]), np.float32(quant[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = a / (inv.astype(np.float32) - b)
    depth[inv == 0] = np.nan
    return depth


def quantization(depth_max: float = DEPTH_MAX, depth_quantization: float = DEPTH_QUANTIZATION
                 ) -> tuple[np.float32, np.float32]:
    """(A, B) of 32FC1 compressedDepth, in float32 as the publisher computes them."""
    q = np.float32(depth_quantization)
    a = q * (q + np.float32(1.0))
    return a, np.float32(1.0) - a / np.float32(depth_max)


def encode_depth(depth: np.ndarray, codec: str = "png", depth_max: float = DEPTH_MAX,
                 depth_quantization: float = DEPTH_QUANTIZATION, png_level: int = 1) -> tuple[str, bytes]:
    """(format, data) as compressed_depth_image_transport publishes a 16UC1 (uint16 mm) or 32FC1
    (float32 m) image. As it does, 16UC1 values beyond depth_max and 32FC1 values not below it
    (and NaN, and <= 0) become 0 (no depth)."""
    if codec not in DEPTH_CODECS:
        raise ValueError(f"depth codec must be one of {DEPTH_CODECS}, got {codec!r}")
    if depth.ndim != 2 or depth.dtype not in (np.uint16, np.float32):
        raise ValueError(f"expected a uint16 (mm) or float32 (m) (H, W) depth image, got {depth.dtype}{depth.shape}")
    if depth.dtype == np.uint16:
        encoding, a, b = "16UC1", np.float32(0.0), np.float32(0.0)
        inv = np.where(depth > np.uint16(min(int(np.float32(depth_max) * np.float32(1000.0)), 65535)), 0, depth)
        inv = inv.astype(np.uint16)
    else:
        encoding = "32FC1"
        a, b = quantization(depth_max, depth_quantization)
        with np.errstate(divide="ignore", invalid="ignore"):
            v = a / depth + b
        good = (depth < np.float32(depth_max)) & (depth > 0)
        inv = np.where(good, np.clip(np.nan_to_num(v, nan=0.0), 0, 65535), 0).astype(np.uint16)  # truncates
    if codec == "png":
        ok, buf = cv2.imencode(".png", inv, [cv2.IMWRITE_PNG_COMPRESSION, int(png_level)])
        if not ok:
            raise ValueError("OpenCV could not encode png")
        payload = buf.tobytes()
    else:
        payload = struct.pack("<II", inv.shape[1], inv.shape[0]) + rvl_encode(inv)
    return f"{encoding}; compressedDepth {codec}", CONFIG_HEADER.pack(INV_DEPTH, float(a), float(b)) + payload


# ----------------------------------------------------------------------------------------- RVL
def _nibbles(data: bytes | memoryview) -> np.ndarray:
    """RVL's nibble stream: little-endian 32-bit words, each read from its most significant nibble."""
    if len(data) % 4:
        raise CompressedImageError("RVL data is not whole 32-bit words (truncated?)")
    words = np.frombuffer(data, "<u4")
    shifts = np.arange(28, -4, -4, dtype=np.uint32)
    return ((words[:, None] >> shifts) & np.uint32(0xF)).astype(np.uint8).ravel()


def _vle_values(nibbles: np.ndarray) -> np.ndarray:
    """Every variable-length integer in the stream: 3 bits per nibble, least significant first,
    the nibble's high bit saying another follows. Trailing unfinished nibbles are dropped."""
    ends = np.flatnonzero(nibbles < 8)
    if not len(ends):
        return np.zeros(0, np.int64)
    starts = np.empty_like(ends)
    starts[0], starts[1:] = 0, ends[:-1] + 1
    lengths = ends - starts + 1
    if lengths.max() > 11:  # 33 bits: more than a 32-bit int carries
        raise CompressedImageError("RVL data is corrupt (a value longer than 32 bits)")
    values = (nibbles[starts] & 7).astype(np.int64)
    longer = np.flatnonzero(lengths > 1)
    for m in range(1, int(lengths.max())):  # most values fit one nibble: few, ever shorter passes
        values[longer] |= (nibbles[starts[longer] + m] & 7).astype(np.int64) << (3 * m)
        longer = longer[lengths[longer] > m + 1]
    return values


def rvl_decode(data: bytes | memoryview, n_pixels: int) -> np.ndarray:
    """RVL (A. D. Wilson, "Fast Lossless Depth Image Compression", 2017) -> n_pixels uint16.

    The stream is a sequence of integers: (zeros, nonzeros, then one value per nonzero pixel)
    repeated until the image is full; each value is the zigzag-coded difference to the previous
    nonzero pixel (the first to 0), so pixels are a running sum, modulo 2^16."""
    ints = _vle_values(_nibbles(data))
    values = ints.tolist()
    n = len(values)
    heads, firsts, counts = [], [], []  # per run: its (zeros, nonzeros) pair's index, first pixel, nonzeros
    i = pixel = 0
    while pixel < n_pixels:  # the one sequential step: each pair says where the next one is
        if i + 2 > n:
            raise CompressedImageError("RVL data is truncated (it ends before the image's last pixel)")
        pixel += values[i]
        nonzeros = values[i + 1]
        heads.append(i)
        firsts.append(pixel)
        counts.append(nonzeros)
        i += 2 + nonzeros
        pixel += nonzeros
        if pixel > n_pixels or i > n:
            raise CompressedImageError(f"RVL data is corrupt or truncated (a run passes pixel {n_pixels} or the "
                                       "data's end)")
    is_value = np.ones(i, bool)
    heads_at = np.array(heads, np.int64)
    is_value[heads_at] = is_value[heads_at + 1] = False
    u = ints[:i][is_value]
    delta = (u >> 1) ^ -(u & 1)
    mark = np.zeros(n_pixels + 1, np.int32)  # +1 where a nonzero run starts, -1 after it ends
    firsts_at, counts_at = np.array(firsts, np.int64), np.array(counts, np.int64)
    runs = counts_at > 0  # nonempty runs start (and end) at increasing, distinct pixels
    mark[firsts_at[runs]] += 1
    mark[firsts_at[runs] + counts_at[runs]] -= 1
    out = np.zeros(n_pixels, np.uint16)
    out[np.cumsum(mark[:-1]) > 0] = (np.cumsum(delta) & 0xFFFF).astype(np.uint16)
    return out


def rvl_encode(image: np.ndarray) -> bytes:
    """uint16 pixels (row-major) -> RVL words, as `rvl_decode` reads them (no size prefix)."""
    flat = np.ascontiguousarray(image, np.uint16).ravel()
    if not flat.size:
        return b""
    nz = flat != 0
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(nz.view(np.int8))) + 1, [flat.size]])
    lengths, is_nz = np.diff(bounds), nz[bounds[:-1]]
    if is_nz[0]:  # every pair starts with a (possibly empty) zero run
        lengths, is_nz = np.concatenate([[0], lengths]), np.concatenate([[False], is_nz])
    if not is_nz[-1]:  # and ends with a (possibly empty) nonzero run
        lengths, is_nz = np.concatenate([lengths, [0]]), np.concatenate([is_nz, [True]])
    zeros, nonzeros = lengths[0::2], lengths[1::2]
    pixels = flat[nz].astype(np.int64)
    delta = np.diff(pixels, prepend=0)
    zigzag = (delta << 1) ^ (delta >> 63)
    seq = np.empty(2 * len(zeros) + len(pixels), np.int64)
    pair_at = 2 * np.arange(len(zeros)) + np.concatenate([[0], np.cumsum(nonzeros)[:-1]])
    is_value = np.ones(len(seq), bool)
    is_value[pair_at] = is_value[pair_at + 1] = False
    seq[pair_at], seq[pair_at + 1], seq[is_value] = zeros, nonzeros, zigzag
    # VLE: ceil(bits / 3) nibbles each (at least one), low 3 bits first, high bit = more follow
    bits = np.floor(np.log2(np.maximum(seq, 1))).astype(np.int64) + 1
    count = np.maximum(1, -(-bits // 3))
    k = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    v = np.repeat(seq, count)
    nib = ((v >> (3 * k)) & 7) | np.where(k < np.repeat(count, count) - 1, 8, 0)
    nib = np.concatenate([nib, np.zeros(-len(nib) % 8, np.int64)]).reshape(-1, 8).astype(np.uint32)
    words = (nib << np.arange(28, -4, -4, dtype=np.uint32)).sum(1, dtype=np.uint32)
    return words.astype("<u4").tobytes()
