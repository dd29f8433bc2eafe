"""ROS 2 bags without a ROS install (rosbags): write bags (rendered scenes, imported datasets), read RGB-D frames back.

Topics follow realsense2_camera (align_depth on). Ground truth travels in the bag as
std_msgs/String JSON on /ground_truth/object_labels (the /object_labels schema, same stamp as
its frame), or as vision_msgs/Detection2DArray on a topic of the caller's choice, or in a
sidecar JSON-lines file keyed by stamp for bags labelled afterwards.
"""
from __future__ import annotations

import json
import math
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from ..runtime.camera import Intrinsics
from ..runtime.results import BBOX_KEYS, FrameLabels, ObjectResult
from .frames import GroundTruthObject, LabelledFrame
from ..runtime.stamps import header_to_ns, ns_to_stamp
from ..runtime.tracking import RESET_GAP_S

COLOR_TOPIC = "/camera/camera/color/image_raw"
DEPTH_TOPIC = "/camera/camera/aligned_depth_to_color/image_raw"
INFO_TOPIC = "/camera/camera/color/camera_info"
GT_TOPIC = "/ground_truth/object_labels"
FRAME_ID = "camera_color_optical_frame"
STORAGES = ("mcap", "sqlite3")
START_NS = 1_700_000_000_000_000_000  # the first frame's stamp
SEQUENCE_GAP_S = RESET_GAP_S + 1.0  # between two recordings (`LabelledFrame.sequence`): a tracker ends every track


class BagError(ValueError):
    """A bag that cannot be used: unreadable, unknown storage, missing topics."""


def _typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY)


def ground_truth(meta: dict[str, Any], stamp_ns: int) -> FrameLabels:
    """A rendered scene's objects as labels of score 1 (written to the bag as JSON)."""
    objects = []
    for o in meta["objects"]:
        c = o["centroid"]
        objects.append(ObjectResult(instance=int(o["instance"]), label=o["class_name"], score=1.0, top_k=(),
                                    bbox=tuple(int(o["bbox"][k]) for k in BBOX_KEYS),
                                    centroid=None if c is None else (float(c["x"]), float(c["y"]), float(c["z"])),
                                    visible_fraction=float(o["visible_fraction"])))
    return FrameLabels(ns_to_stamp(stamp_ns), FRAME_ID, "ground_truth", "", tuple(objects))


def frame_from_scene(scene) -> LabelledFrame:
    """A rendered scene (RenderedScene: colour, uint16 mm depth, meta) as a labelled frame."""
    K = scene.meta["intrinsics"]
    objects = tuple(GroundTruthObject(label=o.label, instance=o.instance, bbox=o.bbox,
                                      visible_fraction=o.visible_fraction, centroid=o.centroid)
                    for o in ground_truth(scene.meta, 0).objects)
    seq = scene.meta.get("sequence")
    return LabelledFrame(scene.color, scene.depth, Intrinsics(K["fx"], K["fy"], K["cx"], K["cy"]), objects,
                         sequence=None if seq is None else str(seq))


def write_bag(path: str | Path, scenes, storage: str = "mcap", rate_hz: float = 30.0,
              start_ns: int = START_NS, color_format: str = "raw", depth_format: str = "raw") -> Path:
    """Scenes (RenderedScene iterable) -> a ROS 2 bag as a camera would record it, with ground truth.

    `color_format` jpeg|png and `depth_format` png|rvl record image_transport's compressed topics
    instead of the raw ones (`<topic>/compressed`, `<topic>/compressedDepth`), as robots record."""
    write_frames(path, (frame_from_scene(s) for s in scenes), storage, rate_hz, start_ns, color_format, depth_format)
    return Path(path)


def _remove_empty(made: list[Path]) -> None:
    """The folders a failed write made for its bag (innermost first), as long as they are empty."""
    for d in made:
        try:
            d.rmdir()
        except OSError:
            break


def write_frames(path: str | Path, frames: Iterable[LabelledFrame], storage: str = "mcap", rate_hz: float = 30.0,
                 start_ns: int = START_NS, color_format: str = "raw", depth_format: str = "raw") -> int:
    """Labelled frames -> a new ROS 2 bag: per frame camera_info (the frame's own K), aligned
    depth (16UC1 mm), colour (rgb8) and ground truth (/object_labels JSON), all with the
    frame's stamp (`start_ns` + i / `rate_hz`, and `SEQUENCE_GAP_S` more wherever the frame's
    `sequence` differs from the one before). Returns the number of frames. The formats as
    for `write_bag`.

    The bag is written into a temporary folder beside `path` and renamed into place at the end:
    a failure (a bad frame, Ctrl-C) leaves nothing behind. An existing `path` is never touched."""
    check_bag_formats(color_format, depth_format)
    from rosbags.rosbag2 import StoragePlugin, Writer

    if storage not in STORAGES:
        raise BagError(f"storage must be one of {STORAGES}, got {storage!r}")
    if not (math.isfinite(rate_hz) and rate_hz > 0):
        raise BagError(f"rate must be > 0 Hz, got {rate_hz}")
    path = Path(path)
    if path.exists() or path.is_symlink():
        raise BagError(f"{path} exists; choose a new path (bags are never overwritten)")
    made = [d for d in (path.parent, *path.parent.parents) if not d.exists()]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    except OSError as e:  # the message names the path asked for, not the hidden folder written first
        _remove_empty(made)
        raise BagError(f"cannot write a bag at {path}: {e.strerror or e}") from None
    ts = _typestore()
    CameraInfo, String = (ts.types[t] for t in ("sensor_msgs/msg/CameraInfo", "std_msgs/msg/String"))
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    n = 0
    try:
        with Writer(tmp / path.name, version=9, storage_plugin=plugin) as w:
            conns = {COLOR_TOPIC: w.add_connection(*transport_topic(COLOR_TOPIC, color_format, "color"), typestore=ts),
                     DEPTH_TOPIC: w.add_connection(*transport_topic(DEPTH_TOPIC, depth_format, "depth"), typestore=ts),
                     INFO_TOPIC: w.add_connection(INFO_TOPIC, CameraInfo.__msgtype__, typestore=ts),
                     GT_TOPIC: w.add_connection(GT_TOPIC, String.__msgtype__, typestore=ts)}
            gaps, last = 0, None
            for n, frame in enumerate(frames, 1):
                if frame.sequence is not None and last is not None and frame.sequence != last:
                    gaps += 1
                last = frame.sequence if frame.sequence is not None else last
                t = start_ns + int(round((n - 1) * 1e9 / rate_hz)) + int(gaps * SEQUENCE_GAP_S * 1e9)
                for topic, msg in frame_messages(ts, frame, t, color_format, depth_format):
                    w.write(conns[topic], t, ts.serialize_cdr(msg, msg.__msgtype__))
        (tmp / path.name).rename(path)
        tmp.rmdir()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(made)
        raise
    return n


def frame_messages(ts, frame: LabelledFrame, t: int, color_format: str = "raw", depth_format: str = "raw"
                   ) -> list[tuple[str, Any]]:
    """One frame's messages in the order a camera driver sends them (camera_info first); colour
    and depth as raw Image or compressed (`compressed_message`), keyed by their raw topic."""
    T = ts.types
    Header, Time = T["std_msgs/msg/Header"], T["builtin_interfaces/msg/Time"]
    Image, CameraInfo, String = T["sensor_msgs/msg/Image"], T["sensor_msgs/msg/CameraInfo"], T["std_msgs/msg/String"]
    RegionOfInterest = T["sensor_msgs/msg/RegionOfInterest"]
    sec, nanosec = ns_to_stamp(t)
    header = Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=FRAME_ID)
    h, wd = frame.color.shape[:2]
    K = frame.intrinsics
    info = CameraInfo(header=header, height=h, width=wd, distortion_model="plumb_bob",
                      d=np.zeros(5), k=np.array([K.fx, 0, K.cx, 0, K.fy, K.cy, 0, 0, 1.0]),
                      r=np.eye(3).ravel(), p=np.array([K.fx, 0, K.cx, 0, 0, K.fy, K.cy, 0, 0, 0, 1, 0.0]),
                      binning_x=0, binning_y=0,
                      roi=RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
    col = Image(header=header, height=h, width=wd, encoding="rgb8", is_bigendian=0, step=wd * 3,
                data=np.ascontiguousarray(frame.color).reshape(-1))
    dep = Image(header=header, height=h, width=wd, encoding="16UC1", is_bigendian=0, step=wd * 2,
                data=np.ascontiguousarray(frame.depth).view(np.uint8).reshape(-1))
    col, dep = compressed_message(ts, col, frame.color, color_format, "color"), \
        compressed_message(ts, dep, frame.depth, depth_format, "depth")
    labels = FrameLabels((sec, nanosec), FRAME_ID, "ground_truth", "", tuple(o.to_result() for o in frame.objects))
    gt = String(data=json.dumps(labels.to_doc()))
    return [(INFO_TOPIC, info), (DEPTH_TOPIC, dep), (COLOR_TOPIC, col), (GT_TOPIC, gt)]


INFO_KEEP = 100  # camera_infos kept by stamp while reading a bag
INFO_WAIT = 30  # pairs that wait for their camera_info at most (read_frames)


# What make-bag can record per stream: raw Image, or image_transport's compressed formats
BAG_FORMATS = {"color": ("raw", "jpeg", "png"), "depth": ("raw", "png", "rvl")}
# Where image_transport puts a compressed stream, in the order a missing raw topic is looked for
TRANSPORT_SUFFIXES = {"color": ("/compressed",), "depth": ("/compressedDepth", "/compressed")}


def check_bag_formats(color_format: str, depth_format: str) -> None:
    for kind, fmt in (("color", color_format), ("depth", depth_format)):
        if fmt not in BAG_FORMATS[kind]:
            raise BagError(f"{kind} format must be one of {', '.join(BAG_FORMATS[kind])}, got {fmt!r}")


def transport_topic(base: str, fmt: str, kind: str) -> tuple[str, str]:
    """(topic, message type) image_transport publishes `fmt` of `base` on."""
    if fmt == "raw":
        return base, "sensor_msgs/msg/Image"
    return base + ("/compressedDepth" if kind == "depth" else "/compressed"), "sensor_msgs/msg/CompressedImage"


def compressed_message(ts, raw_msg, image, fmt: str, kind: str):
    """`raw_msg` itself (raw), or a CompressedImage with its header holding `image` encoded as
    compressed_image_transport / compressed_depth_image_transport would (runtime.compressed)."""
    if fmt == "raw":
        return raw_msg
    from ..runtime.compressed import encode_color, encode_depth

    form, data = encode_color(image, fmt) if kind == "color" else encode_depth(image, fmt)
    CompressedImage = ts.types["sensor_msgs/msg/CompressedImage"]
    return CompressedImage(header=raw_msg.header, format=form, data=np.frombuffer(data, np.uint8))


def resolve_image_topics(have: dict[str, str] | set[str], topics: tuple[str, str, str]) -> tuple[str, str, str]:
    """The colour and depth topics to read: each as given when the bag has it, else the first
    image_transport compressed topic of it the bag has (`/compressed`, `/compressedDepth`), else
    as given (the caller's missing-topic error names it)."""
    color_t, depth_t, info_t = topics
    found = []
    for topic, kind in ((color_t, "color"), (depth_t, "depth")):
        options = [topic] + [topic + s for s in TRANSPORT_SUFFIXES[kind]]
        found.append(next((t for t in options if t in have), topic))
    return found[0], found[1], info_t


def bag_image_topics(path: str | Path, topics: tuple[str, str, str]) -> tuple[str, str, str]:
    """`resolve_image_topics` for the bag at `path` (topics as given if it cannot be opened: the
    reader's own error comes later)."""
    try:
        reader = open_reader(path)
    except BagError:
        return topics
    try:
        return resolve_image_topics(topics_of(reader), topics)
    finally:
        reader.close()


@dataclass
class BagFrame:
    stamp_ns: int
    color: Any  # sensor_msgs/Image or CompressedImage (rosbags message: same fields as rclpy's)
    depth: Any
    info: Any | None


def open_reader(path: str | Path):
    from rosbags.highlevel import AnyReader

    path = Path(path)
    if not path.exists():
        raise BagError(f"{path}: no such bag")
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        files = sorted(p.name for p in path.iterdir() if p.suffix in (".mcap", ".db3"))
        lone = (f"; it holds {files[0]}{' and more' if len(files) > 1 else ''}: pass that file itself "
                "(an .mcap reads without metadata.yaml), or rebuild metadata.yaml with `ros2 bag reindex`"
                if files else "")
        raise BagError(f"{path}: not a rosbag2 folder (it has no metadata.yaml){lone}{_dataset_hint(path)}")
    try:
        reader = AnyReader([path], default_typestore=_typestore())
        if path.is_dir() and not reader.is2:
            # AnyReader decides ROS 1 vs 2 by the ".bag" suffix; a rosbag2 folder may carry it too.
            from rosbags.rosbag2 import Reader as Reader2

            reader.is2, reader.readers = True, [Reader2(path)]
        reader.open()
    except Exception as e:  # noqa: BLE001 -- rosbags raises several types for corrupt files
        cut = " (the file ends early, as a recording stopped before its writer closed it does; the mcap CLI's " \
              "`mcap recover` rewrites what it holds)" if "end magic" in str(e).lower() else ""
        why = " ".join(str(e).split())  # one line: a YAML parser's error spans five, with a caret drawing
        raise BagError(f"{path}: cannot open bag ({type(e).__name__}: {why}){cut}") from None
    return reader


def _dataset_hint(path: Path) -> str:
    """For a BOP or YCB-Video folder given where a bag goes: how to make it one."""
    from .dataset_formats import detect_format

    try:
        fmt = detect_format(path)
    except (ValueError, OSError):  # no dataset either (or not readable): the bag error says enough
        return ""
    return f"; it holds a {'BOP' if fmt == 'bop' else 'YCB-Video'} dataset: make a bag of it first with " \
           f"robot-classify import-dataset {path} --out BAG"


def refuse_output_inside(out: str | Path, inputs: Iterable[str | Path], what: str = "the output") -> None:
    """A command never writes into what it reads (a bag's folder, a dataset): rosbag2 and the
    dataset readers would take the new files for part of it next time."""
    where = Path(out).expanduser().resolve()
    for given in inputs:
        source = Path(given).expanduser().resolve()
        if source.is_dir() and where.is_relative_to(source):
            raise ValueError(f"{what} {out} is inside {given}, which this command reads; write it elsewhere")


@contextmanager
def opened_bag(path: str | Path) -> Iterator[Any]:
    """The bag at `path` open for the block (`open_reader`), closed after it: one open for
    everything a command reads (topics, ground truth, frames)."""
    reader = open_reader(path)
    try:
        yield reader
    finally:
        reader.close()


def topics_of(reader) -> dict[str, str]:
    return {c.topic: c.msgtype for c in reader.connections}


IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
INFO_TYPE = "sensor_msgs/msg/CameraInfo"


def _require_topics(reader, path, wanted: list[str], info: str, need_info: bool) -> None:
    """Each of `wanted` (images) in the bag, and `info` (camera_info) where `need_info` or the bag
    has it, each of its kind: a String topic read as camera_info had failed as "bag is truncated
    or corrupt (AttributeError ...)"."""
    have = topics_of(reader)
    expected = {t: IMAGE_TYPES for t in wanted}
    if need_info or info in have:
        expected[info] = (INFO_TYPE,)
    missing = [t for t in expected if t not in have]
    wrong = [f"{t} is {have[t]}, not {' or '.join(kinds)}" for t, kinds in expected.items()
             if t in have and have[t] not in kinds]
    if missing or wrong:
        listing = "\n".join(f"  {t} [{m}]" for t, m in sorted(have.items())) or "  (none)"
        what = "; ".join(([f"missing topic(s) {', '.join(missing)}"] if missing else []) + wrong)
        raise BagError(f"{path}: {what}; the bag has:\n{listing}\n"
                       f"pass --topics COLOR,DEPTH,CAMERA_INFO to choose others")


def _frame_topics(reader, path, topics: tuple[str, str, str], need_info: bool) -> tuple[str, str, str]:
    """The colour, depth and camera_info topics `read_frames` reads (`resolve_image_topics`), checked."""
    color_t, depth_t, info_t = resolve_image_topics(topics_of(reader), topics)  # raw, else compressed
    _require_topics(reader, path, [color_t, depth_t], info_t, need_info)
    return color_t, depth_t, info_t


def check_frame_topics(path: str | Path, topics: tuple[str, str, str], need_info: bool = True,
                       reader: Any | None = None) -> None:
    """What `read_frames` checks before its first frame, alone: a command reading several bags
    checks them all before it spends time on the first, and one that clears an output folder
    checks before it clears. `reader`: the bag already open at `path`."""
    if reader is not None:
        _frame_topics(reader, path, topics, need_info)
        return
    with opened_bag(path) as reader:
        _frame_topics(reader, path, topics, need_info)


def read_frames(path: str | Path, topics: tuple[str, str, str] = (COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC),
                slop: float = 0.02, stats: dict | None = None, reader: Any | None = None,
                need_info: bool = False) -> Iterator[BagFrame]:
    """Colour/depth pairs in stamp order, paired exactly like the node (`StampSynchronizer`).
    Where the bag lacks a raw image topic, its image_transport compressed topic is read
    (`resolve_image_topics`): frames then hold CompressedImage messages, which
    `FrameProcessor.process_messages` decodes.

    Unlike the live node, nothing is dropped for being late: offline there is time for every
    pair. Each pair gets the camera_info stamped like it, as the node does. Recorders often
    write a frame's camera_info after its images, so a pair with no camera_info of its stamp
    yet waits until one with its stamp or a later one arrives (then: its own if it came, else
    the latest), or the bag ends (then: the latest seen). At most `INFO_WAIT` pairs wait; the
    oldest then goes with the latest camera_info. A bag without the camera_info topic waits for
    nothing: its frames come with info=None (the caller decides).

    `reader`: the bag at `path` already open (`open_reader`), read here and left open, so that a
    caller reading ground truth and frames opens the bag once; None: opened and closed here.
    `need_info`: a bag without the camera_info topic is an error naming it (depth segmentation
    would skip every frame), not frames with info=None.
    """
    from ..runtime.sync import StampSynchronizer

    own = reader is None
    if own:
        reader = open_reader(path)
    try:
        color_t, depth_t, info_t = _frame_topics(reader, path, topics, need_info)
        conns = [c for c in reader.connections if c.topic in (color_t, depth_t, info_t)]
        has_info = any(c.topic == info_t for c in conns)
        sync = StampSynchronizer(slop)
        info, info_stamp = None, None  # the latest camera_info, by arrival
        infos: dict[int, Any] = {}  # recent ones by stamp, oldest first
        waiting: list[tuple[int, Any, Any]] = []  # pairs whose camera_info has not arrived

        def release(up_to: int | None) -> Iterator[BagFrame]:
            """Waiting pairs stamped <= up_to (all for None), in order, with their camera_info."""
            while waiting and (up_to is None or waiting[0][0] <= up_to):
                key, c, d = waiting.pop(0)
                yield BagFrame(key, c, d, infos.get(key, info))

        try:
            for conn, _, raw in reader.messages(connections=conns):
                msg = reader.deserialize(raw, conn.msgtype)
                stamp = header_to_ns(msg.header)
                if conn.topic == info_t:
                    info, info_stamp, infos[stamp] = msg, stamp, msg
                    while len(infos) > INFO_KEEP:
                        infos.pop(next(iter(infos)))
                    yield from release(stamp)
                    continue
                (sync.add_color if conn.topic == color_t else sync.add_depth)(stamp, msg)
                pair = sync.pop_latest()
                if pair is None:
                    continue
                waiting.append(pair)
                if not has_info or pair[0] in infos or (info_stamp is not None and info_stamp >= pair[0]):
                    yield from release(pair[0])
                while len(waiting) > INFO_WAIT:
                    key, c, d = waiting.pop(0)
                    yield BagFrame(key, c, d, infos.get(key, info))
            yield from release(None)
        except BagError:
            raise
        except Exception as e:  # noqa: BLE001
            raise BagError(f"{path}: bag is truncated or corrupt ({type(e).__name__}: {e})") from None
        if stats is not None:
            stats.update(vars(sync.stats))
    finally:
        if own:
            reader.close()


def read_ground_truth(path: str | Path, sidecar: str | Path | None = None, topic: str | None = None,
                      reader: Any | None = None) -> dict[int, FrameLabels]:
    """stamp_ns -> ground truth, from the bag's topic or a JSON-lines sidecar (/object_labels
    documents; ground truth needs only header.stamp and each object's label and bbox). The
    topic may hold /object_labels JSON (std_msgs/String) or vision_msgs/Detection2DArray, whose
    best hypothesis's class_id is the label (runtime.detections). topic None: GT_TOPIC.
    `reader`: the bag already open, left open (as for `read_frames`)."""
    topic = topic or GT_TOPIC
    out: dict[int, FrameLabels] = {}
    if sidecar is not None:
        if not Path(sidecar).is_file():
            raise BagError(f"no such ground-truth file: {sidecar} (--ground-truth)")
        for n, line in enumerate(Path(sidecar).read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                labels = FrameLabels.from_doc(json.loads(line))
            except (KeyError, TypeError, ValueError) as e:  # json.JSONDecodeError is a ValueError
                raise BagError(f"{sidecar}:{n}: not a ground-truth line ({e})") from None
            out[labels.stamp_ns] = labels
        return out
    own = reader is None
    if own:
        reader = open_reader(path)
    try:
        if topic not in topics_of(reader):
            return {}
        conns = [c for c in reader.connections if c.topic == topic]
        for conn in conns:
            if conn.msgtype not in GT_TYPES:
                raise BagError(f"{path}: {topic} is {conn.msgtype}; ground truth must be one of {', '.join(GT_TYPES)}")
        for conn, t, raw in reader.messages(connections=conns):
            try:
                labels = _ground_truth_message(reader.deserialize(raw, conn.msgtype), conn.msgtype)
            except (KeyError, TypeError, ValueError) as e:
                raise BagError(f"{path}: {topic} at {t} ns: not a ground-truth document ({e})") from None
            out[labels.stamp_ns] = labels
    finally:
        if own:
            reader.close()
    return out


# A recorded vision_msgs/Detection2DArray (this node's ~/detections, or another detector's) works
# too: rosbags reads its type from the definition the recorder stored in the bag.
GT_TYPES = ("std_msgs/msg/String", "vision_msgs/msg/Detection2DArray")


def _ground_truth_message(msg: Any, msgtype: str) -> FrameLabels:
    if msgtype == "std_msgs/msg/String":
        return FrameLabels.from_doc(json.loads(msg.data))
    from ..runtime.detections import frame_labels_from_detection_2d_array

    return frame_labels_from_detection_2d_array(msg, "ground_truth")
