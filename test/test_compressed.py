"""image_transport's compressed formats (runtime/compressed.py), on data encoded here."""
import struct
import time
import zlib

import cv2
import numpy as np
import pytest

from robot_classify.runtime.compressed import (CONFIG_HEADER, CompressedImageError, decode_color, decode_depth,
                                               encode_color, encode_depth, jpeg_size, png_header, quantization,
                                               rvl_decode, rvl_encode)


def depth_scene(seed: int = 0) -> np.ndarray:
    """A table at ~1 m with two boxes, sensor noise and holes: what a depth camera sends (mm)."""
    rng = np.random.default_rng(seed)
    d = (1000 + rng.normal(0, 3, (480, 640))).astype(np.uint16)
    d[200:300, 250:320], d[150:260, 400:470] = 940, 870
    d[rng.random(d.shape) < 0.03] = 0
    d[:, :12] = 0  # the left band a stereo camera cannot see
    return d


# ------------------------------------------------------------------------------ RVL
def test_rvl_encodes_a_hand_computed_example():
    """[0, 0, 5, 3]: zeros 2 -> nibble 2; nonzeros 2 -> 2; 5 (delta +5, zigzag 10 = 0b1010) -> low
    3 bits 010 with 'more' set = 0xA, then 1; 3 (delta -2, zigzag 3) -> 3. Nibbles 2 2 A 1 3 fill
    one 32-bit word from its top: 0x22A13000, stored little-endian."""
    data = rvl_encode(np.array([[0, 0, 5, 3]], np.uint16))
    assert data == bytes([0x00, 0x30, 0xA1, 0x22])
    np.testing.assert_array_equal(rvl_decode(data, 4), [0, 0, 5, 3])


@pytest.mark.parametrize("case", ["scene", "random", "zeros", "no_zeros", "extremes", "one_pixel", "ends_nonzero"])
def test_rvl_round_trips_bit_exact(case):
    rng = np.random.default_rng(1)
    img = {"scene": depth_scene(),
           "random": np.where(rng.random((48, 64)) < 0.4, 0, rng.integers(1, 65536, (48, 64))).astype(np.uint16),
           "zeros": np.zeros((7, 9), np.uint16),
           "no_zeros": rng.integers(1, 65536, (9, 7)).astype(np.uint16),
           "extremes": np.array([[65535, 1, 65535, 0, 1, 0, 65535]], np.uint16),  # deltas of +-65534
           "one_pixel": np.array([[42]], np.uint16),
           "ends_nonzero": np.array([[0, 0, 0, 7, 8]], np.uint16)}[case]
    np.testing.assert_array_equal(rvl_decode(rvl_encode(img), img.size).reshape(img.shape), img)


def test_rvl_truncated_or_corrupt_data_is_refused():
    data = rvl_encode(depth_scene())
    for bad in (data[:len(data) // 2], data[:-4], data[:-1], b"\xff" * 64):
        with pytest.raises(CompressedImageError, match="RVL"):
            rvl_decode(bad, 480 * 640)


# ------------------------------------------------------------------------------ depth
@pytest.mark.parametrize("codec", ["png", "rvl"])
def test_16uc1_compressed_depth_round_trips_bit_exact(codec):
    d = depth_scene()
    fmt, data = encode_depth(d, codec)
    assert fmt == f"16UC1; compressedDepth {codec}"
    assert struct.unpack("<i", data[:4]) == (0,)  # the config header: format 0 = inverse depth
    if codec == "rvl":
        assert struct.unpack("<II", data[12:20]) == (640, 480)  # cols, rows
    else:
        assert data[12:20] == b"\x89PNG\r\n\x1a\n"
    got = decode_depth(fmt, data)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, d)


def test_16uc1_beyond_depth_max_becomes_no_depth_as_the_publisher_does():
    d = np.array([[500, 9999, 10000, 10001, 60000]], np.uint16)
    np.testing.assert_array_equal(decode_depth(*encode_depth(d, "rvl", depth_max=10.0)), [[500, 9999, 10000, 0, 0]])


@pytest.mark.parametrize("codec", ["png", "rvl"])
def test_32fc1_decodes_with_the_headers_quantisation(codec):
    """32FC1: v = uint16(A / d + B), decoded A / (v - B) with A, B from the header: bit for bit
    that formula in float32, within the quantisation step (d^2 / A) of the depth sent, and NaN
    where the publisher had no depth (NaN, <= 0, >= depth_max)."""
    rng = np.random.default_rng(2)
    d = rng.uniform(0.2, 4.0, (60, 80)).astype(np.float32)
    d[0, :4] = [np.nan, 0.0, -1.0, 12.0]
    fmt, data = encode_depth(d, codec, depth_max=10.0, depth_quantization=100.0)
    assert fmt == f"32FC1; compressedDepth {codec}"
    a, b = quantization(10.0, 100.0)
    assert CONFIG_HEADER.unpack(data[:12]) == (0, pytest.approx(10100.0), pytest.approx(1 - 10100.0 / 10.0))
    assert (np.float32(CONFIG_HEADER.unpack(data[:12])[1]), np.float32(CONFIG_HEADER.unpack(data[:12])[2])) == (a, b)
    got = decode_depth(fmt, data)
    assert got.dtype == np.float32
    assert np.isnan(got[0, :4]).all()
    v = (a / d[1:] + b).astype(np.uint16)  # what the publisher sends
    np.testing.assert_array_equal(got[1:], a / (v.astype(np.float32) - b))
    assert np.all(np.abs(got[1:] - d[1:]) <= d[1:] ** 2 / a * 1.01)


def test_16bit_png_through_the_plain_compressed_transport_is_depth_too():
    d = depth_scene()
    ok, png = cv2.imencode(".png", d)
    np.testing.assert_array_equal(decode_depth("16UC1; png compressed ", png.tobytes()), d)


@pytest.mark.parametrize("fmt, message", [
    ("16UC1; compressedDepth zstd", "unsupported compressedDepth codec 'zstd'"),
    ("8UC1; compressedDepth png", "compressedDepth of '8UC1'"),
    ("16UC1; jpeg compressed mono8", "lossy"),
    ("rgb8; tiff compressed bgr8", "unsupported compressed depth format"),
    ("compressedDepth", "format 'compressedDepth' names no image encoding"),  # found from outside
])
def test_unsupported_depth_formats_are_named(fmt, message):
    _, data = encode_depth(depth_scene()[:8, :8], "png")
    with pytest.raises(CompressedImageError, match=message):
        decode_depth(fmt, data)


def test_malformed_compressed_depth_is_refused_with_its_reason():
    fmt, data = encode_depth(depth_scene(), "png")
    cases = {"header only": data[:12], "truncated": data[:len(data) // 2],
             "wrong header": struct.pack("<iff", 7, 0, 0) + data[12:], "garbage": data[:12] + b"\x00" * 200}
    for name, bad in cases.items():
        with pytest.raises(CompressedImageError):
            decode_depth(fmt, bad)
    with pytest.raises(CompressedImageError, match="header has format 7"):
        decode_depth(fmt, cases["wrong header"])
    with pytest.raises(CompressedImageError, match="truncated"):
        decode_depth(fmt, cases["truncated"])
    rvl_fmt, rvl = encode_depth(depth_scene(), "rvl")
    with pytest.raises(CompressedImageError, match="claims 100000x100000"):
        decode_depth(rvl_fmt, rvl[:12] + struct.pack("<II", 100000, 100000) + rvl[20:])
    with pytest.raises(CompressedImageError, match="RVL data is"):
        decode_depth(rvl_fmt, rvl[:len(rvl) // 2 // 4 * 4])


def _with_size(png: bytes, width: int, height: int) -> bytes:
    """The PNG with its IHDR saying another size (CRC fixed): a small message claiming a huge image."""
    ihdr = b"IHDR" + struct.pack(">II", width, height) + png[24:29]
    return png[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + png[33:]


def test_a_decompression_bomb_is_refused_before_decoding():
    fmt, data = encode_depth(np.zeros((480, 640), np.uint16), "png")
    bomb = data[:12] + _with_size(data[12:], 60000, 60000)  # 3.6 G pixels, 7 GB decoded
    t0 = time.perf_counter()
    with pytest.raises(CompressedImageError, match="claims 60000x60000 pixels.*refused before decoding"):
        decode_depth(fmt, bomb)
    with pytest.raises(CompressedImageError, match="more than the 307200 allowed"):
        decode_depth(fmt, data[:12] + _with_size(data[12:], 641, 480), max_pixels=640 * 480)
    cfmt, cdata = encode_color(np.zeros((480, 640, 3), np.uint8), "png")
    with pytest.raises(CompressedImageError, match="refused before decoding"):
        decode_color(cfmt, _with_size(cdata, 50000, 50000))
    assert time.perf_counter() - t0 < 0.5


# ------------------------------------------------------------------------------ colour
def test_png_colour_round_trips_exactly_and_in_rgb_order():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    rgb[0, 0] = (255, 0, 0)
    fmt, data = encode_color(rgb, "png")
    assert fmt == "rgb8; png compressed bgr8"
    assert png_header(data)[:2] == (64, 48)
    got = decode_color(fmt, data)
    np.testing.assert_array_equal(got, rgb)
    assert tuple(got[0, 0]) == (255, 0, 0)  # red stays red: the payload is BGR


def test_jpeg_colour_decodes_close_to_the_original_and_in_rgb_order():
    rgb = np.zeros((480, 640, 3), np.uint8)
    rgb[:, :320] = (200, 30, 30)
    rgb[:, 320:] = (30, 30, 200)
    fmt, data = encode_color(rgb, "jpeg", quality=90)
    assert fmt == "rgb8; jpeg compressed bgr8" and jpeg_size(data) == (640, 480)
    got = decode_color(fmt, data)
    assert got.shape == rgb.shape and got.dtype == np.uint8
    assert np.abs(got.astype(int) - rgb).mean() < 2.0
    assert tuple(got[240, 100]) == pytest.approx((200, 30, 30), abs=6)


def test_old_format_strings_and_grey_images_decode():
    grey = np.arange(48 * 64, dtype=np.uint32).reshape(48, 64).astype(np.uint8)
    ok, png = cv2.imencode(".png", grey)
    got = decode_color("png", png.tobytes())  # old publishers: the codec alone
    assert got.shape == (48, 64, 3) and (got[..., 0] == grey).all() and (got[..., 2] == grey).all()
    ok, jpg = cv2.imencode(".jpg", cv2.merge([grey, grey, grey]))
    assert decode_color("jpeg", jpg.tobytes()).shape == (48, 64, 3)


def test_malformed_colour_is_refused_with_its_reason():
    rgb = np.full((48, 64, 3), 90, np.uint8)
    _, jpg = encode_color(rgb, "jpeg")
    fmt, png = encode_color(rgb, "png")
    cases = [("rgb8; jpeg compressed bgr8", jpg[:len(jpg) // 2], "truncated"),
             ("rgb8; png compressed bgr8", png[:len(png) // 2], "truncated"),
             ("rgb8; png compressed bgr8", jpg, "not a PNG"),
             ("rgb8; jpeg compressed bgr8", png, "not a JPEG"),
             ("rgb8; jpeg compressed bgr8", b"\xff\xd8\xff", "truncated or malformed"),
             ("rgb8; tiff compressed bgr8", png, "unsupported compressed colour format"),
             ("rgb8; jpeg compressed bgr8", b"", "not a JPEG")]
    for form, data, message in cases:
        with pytest.raises(CompressedImageError, match=message):
            decode_color(form, data)
    ok, png16 = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint16))
    with pytest.raises(CompressedImageError, match="16-bit samples; colour must be 8-bit"):
        decode_color("rgb16; png compressed bgr16", png16.tobytes())


def test_random_corruption_only_ever_raises_the_clear_error():
    """Flipped and cut bytes anywhere: a CompressedImageError or an image of the stated size, never
    another exception."""
    rng = np.random.default_rng(4)
    color = np.random.default_rng(5).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    depth = depth_scene()[:24, :32]
    samples = [(decode_color, *encode_color(color, "jpeg")), (decode_color, *encode_color(color, "png")),
               (decode_depth, *encode_depth(depth, "png")), (decode_depth, *encode_depth(depth, "rvl"))]
    for decode, fmt, data in samples:
        for _ in range(40):
            bad = bytearray(data)
            for i in rng.integers(0, len(bad), 3):
                bad[i] ^= int(rng.integers(1, 256))
            bad = bytes(bad[:int(rng.integers(len(bad) // 2, len(bad) + 1))])
            try:
                got = decode(fmt, bad, max_pixels=24 * 32)
            except CompressedImageError:
                continue
            assert got.shape[:2] == (24, 32)


def test_rvl_frames_with_little_depth_decode_bit_for_bit():
    """RVL codes a run of zeros in a few nibbles: a frame with no depth, or depth in a few rows,
    is far smaller than 1/5 of its pixels (0.7.0 refused them as corrupt, found from outside)."""
    sparse = depth_scene().copy()
    sparse[: int(0.8 * len(sparse))] = 0
    for depth in (np.zeros((480, 640), np.uint16), sparse):
        fmt, data = encode_depth(depth, "rvl")
        np.testing.assert_array_equal(decode_depth(fmt, data, max_pixels=640 * 480), depth)


def test_trailing_zero_padding_is_no_truncation_and_a_cut_still_is():
    rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8)
    for codec in ("jpeg", "png"):
        fmt, data = encode_color(rgb, codec)
        padded = decode_color(fmt, data + b"\x00" * (640 * 480 * 2))  # a USB camera's fixed-size MJPEG buffer
        np.testing.assert_array_equal(padded, decode_color(fmt, data))
        with pytest.raises(CompressedImageError, match="truncated"):
            decode_color(fmt, data[:-40] + b"\x00" * 1000)


def test_a_jpeg_followed_by_other_bytes_decodes_and_a_cut_one_still_does_not():
    """Some MJPEG drivers fill the rest of a fixed-size buffer with other bytes than zeros: the
    whole image was refused as truncated (found from outside). The end-of-image marker must follow
    the last scan, also in a progressive JPEG (several scans)."""
    rgb = np.random.default_rng(1).integers(0, 255, (48, 64, 3), np.uint8)
    fmt, data = encode_color(rgb, "jpeg")
    ok, progressive = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    junk = b"junk" * 200
    np.testing.assert_array_equal(decode_color(fmt, data + junk), decode_color(fmt, data))
    assert progressive.tobytes().count(b"\xff\xda") > 1
    for whole in (data, progressive.tobytes()):
        decode_color(fmt, whole + junk)
        with pytest.raises(CompressedImageError, match="truncated"):
            decode_color(fmt, whole[:-40] + junk)


def test_a_png_sent_as_compressed_depth_without_its_header_says_so():
    _, png = encode_depth(depth_scene(), "png", )
    with pytest.raises(CompressedImageError, match="not its 12-byte header.*'16UC1; png compressed'"):
        decode_depth("16UC1; compressedDepth png", png[12:])


def _processor_and_messages(color_shape: tuple[int, int], codec: str):
    """A two-class processor, and a compressed colour image of `color_shape` and a 640x480
    compressedDepth PNG as messages (fields only), with their header."""
    from types import SimpleNamespace

    from robot_classify.learn.features import FeaturePipeline
    from robot_classify.learn.knn import KNNClassifier
    from robot_classify.learn.model import ClassifierModel
    from robot_classify.runtime.frame_processor import FrameProcessor
    from robot_classify.runtime.parameters import check_parameters

    patches = np.stack([np.full((32, 32, 3), c, np.uint8) for c in (10, 200)])
    model = ClassifierModel(FeaturePipeline("pixels", center=False), KNNClassifier(1, "l2", device="cpu"),
                            ["a", "b"]).fit(patches, np.array([0, 1]))
    processor = FrameProcessor.from_parameters(model, check_parameters(None))
    header = SimpleNamespace(stamp=SimpleNamespace(sec=1, nanosec=0), frame_id="cam")
    fmt, data = encode_color(np.zeros((*color_shape, 3), np.uint8), codec)
    dfmt, ddata = encode_depth(np.full((480, 640), 900, np.uint16), "png")
    return (processor, SimpleNamespace(header=header, format=fmt, data=data),
            SimpleNamespace(header=header, format=dfmt, data=ddata), header)


def test_a_compressed_colour_smaller_than_camera_info_is_named_as_such():
    """Found from outside: a 320x240 JPEG beside 640x480 camera_info and depth was blamed on the
    depth ("compressed depth PNG claims 640x480 pixels, more than the 76800 allowed")."""
    from types import SimpleNamespace

    from robot_classify.runtime.frame_processor import FrameSkipped

    processor, color, depth, header = _processor_and_messages((240, 320), "jpeg")
    info = SimpleNamespace(header=header, width=640, height=480, k=[600.0, 0, 320, 0, 600.0, 240, 0, 0, 1])
    with pytest.raises(FrameSkipped, match="camera_info is for 640x480 images, the colour image is 320x240"):
        processor.process_messages(color, depth, info)


def test_intrinsics_that_cannot_be_this_images_are_refused_and_unlikely_ones_warned():
    """Found from outside: camera_info with cx = 1e5 or fx = fy = 1 gave empty frames without a
    word (and /diagnostics said ok), and the K of a camera at twice the resolution, with width
    and height 0, changed the labels quietly."""
    from types import SimpleNamespace

    from robot_classify.runtime.frame_processor import FrameSkipped

    processor, color, depth, header = _processor_and_messages((480, 640), "png")

    def info(fx, cx, cy, size=(640, 480)):
        return SimpleNamespace(header=header, width=size[0], height=size[1], k=[fx, 0, cx, 0, fx, cy, 0, 0, 1])

    assert processor.process_messages(color, depth, info(600.0, 320, 240)).labels.warning is None
    for k, why in (((600.0, 1e5, 240), r"principal point \(100000, 240\) is outside the 640x480 image"),
                   ((1.0, 320, 240), "field of view of over 157 degrees")):
        with pytest.raises(FrameSkipped, match=why):
            processor.process_messages(color, depth, info(*k))
    doubtful = processor.process_messages(color, depth, info(1230.0, 636, 478, (0, 0))).labels
    assert doubtful.warning.startswith("principal point (636, 478) is far from the centre of the 640x480 image")
