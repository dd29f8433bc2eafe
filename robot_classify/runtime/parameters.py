"""The node's parameters, declared once: the node declares them from this table, the offline
commands (`replay-eval`, `bag-to-dataset`, `eval-patches`, `demo`) read the node's own ROS 2
params YAML through `read_params_file`, and both validate with `check_parameters`, so
"replay-eval runs exactly what runs on the robot" holds at any settings, with the same
error messages. `config/classify.yaml` is checked against this table by a test.

No ROS: a params file is plain YAML (`robot_classify: ros__parameters: {...}`, nested
names flattened with dots as ROS does).
"""
from __future__ import annotations

import difflib
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from .patches import SegmentationParams
from .tracking import TrackerParams

log = logging.getLogger(__name__)

Value = Union[bool, int, float, str]
NODE_NAME = "robot_classify"


@dataclass(frozen=True)
class ParameterSpec:
    default: Value
    description: str
    range: tuple[float, float] | None = None  # inclusive; ints for int parameters
    choices: tuple[str | int, ...] | None = None  # the only values allowed (within range, for numbers)
    dynamic: bool = False  # changeable at run time (ros2 param set)

    @property
    def on_off(self) -> bool:
        """Choices with "on" and "off": YAML 1.1 (ROS params files, `-p name:=on`) reads those
        unquoted as true/false, so a bool is taken to mean them."""
        return self.choices is not None and "on" in self.choices and "off" in self.choices


_SEG = SegmentationParams()
_TRK = TrackerParams()
PARAMETERS: dict[str, ParameterSpec] = {
    "model_path": ParameterSpec("", "model file (.safetensors); empty = the embedded default model"),
    "device": ParameterSpec("auto", "where the classifier runs", choices=("auto", "cpu", "cuda")),
    "min_score": ParameterSpec(-1.0, "objects scoring below this are labelled 'unknown' (top_k kept); negative (-1) "
                               "= the model's own default, chosen on its validation data (0.5 for models "
                               "without calibration)", (-1.0, 1.0), dynamic=True),
    "top_k": ParameterSpec(3, "alternatives reported per object, at most the number of classes; classes scoring 0 are left out", (1, 1000), dynamic=True),
    "k": ParameterSpec(0, "kNN neighbours; 0 = the model's tuned k", (0, 1_000_000), dynamic=True),
    "size_check": ParameterSpec(True, "name a default class only for a segment of that product's measured size "
                                "(runtime/object_sizes.py); taught classes are never ruled out", dynamic=True),
    "pose_check": ParameterSpec(True, "with size_check: also require a pose the product can rest in on the support "
                                "(its height above the table and its footprint, runtime/object_sizes.py), and one the model's "
                                "training views showed it in where the model file lists them (the default's)",
                                dynamic=True),
    "max_objects": ParameterSpec(_SEG.max_objects, "objects per frame (largest first)", (1, 1000)),
    "workers": ParameterSpec(1, "frames processed at once (segmentation and classification run in parallel); 2+ raise "
                            "throughput when one frame takes longer than the camera period (results go out in the order "
                            "their frames came; one an older frame holds up longer than 0.5 s is dropped)", (1, 16)),
    "sync_slop": ParameterSpec(0.02, "max colour/depth stamp difference to pair, seconds", (0.0, 1.0)),
    "max_queue_wait": ParameterSpec(0.2, "seconds a paired frame may wait for a worker while newer frames are ready; "
                                     "older ones are dropped (0 = always take the newest frame)", (0.0, 10.0)),
    "managed": ParameterSpec(False, "start as a lifecycle (managed) node: unconfigured until a lifecycle manager or "
                             "`ros2 lifecycle set` configures (load and check) and activates (subscribe, publish) it"),
    "input.transport.color": ParameterSpec("raw", "colour input as image_transport names it: raw (color/image_raw, "
                                           "sensor_msgs/Image) or compressed (color/image_raw/compressed: JPEG or PNG)",
                                           choices=("raw", "compressed")),
    "input.transport.depth": ParameterSpec("raw", "depth input: raw (depth/image_raw), compressedDepth "
                                           "(depth/image_raw/compressedDepth: PNG or RVL, 16UC1 or 32FC1) or "
                                           "compressed (depth/image_raw/compressed: 16-bit PNG)",
                                           choices=("raw", "compressedDepth", "compressed")),
    "qos.reliability": ParameterSpec("best_available", "camera input QoS: best_available (reliable from a reliable "
                                 "publisher, best effort from a best-effort one), reliable or best_effort",
                                 choices=("best_available", "reliable", "best_effort")),
    "output.vision_msgs": ParameterSpec("auto", "also publish ~/detections, ~/detections_3d and ~/label_info "
                                        "(vision_msgs): auto = when vision_msgs imports, on = refuse to start "
                                        "without it, off", choices=("auto", "on", "off")),
    "teach.save_path": ParameterSpec("", "where ~/save_model writes the taught model; empty = a new time-stamped "
                                     "file beside model_path (or in the cache for the embedded default); an existing file there is "
                                     "replaced only if it is a robot_classify model"),
    "teach.timeout": ParameterSpec(30.0, "seconds a ~/teach request may wait for its next view before it fails",
                                   (1.0, 3600.0)),
    "teach.jitter_crops": ParameterSpec(3, "extra examples per taught view: the view re-cut as a slightly different "
                                        "segmentation would (as the default model's recipe trains)", (0, 20)),
    "teach.occluded_crops": ParameterSpec(3, "extra examples per taught view: a crop of 50 to 90% of the object, "
                                          "cut by a straight edge, as a neighbour in front would leave it", (0, 20)),
    "teach.white_balance": ParameterSpec(0.15, "each extra example is seen under another white balance and exposure: "
                                         "gains of 1 +- this per channel and overall (0 = as seen)", (0.0, 0.5)),
    "teach.mirror": ParameterSpec(True, "also learn each taught crop's mirror image (a turned object shows its "
                                  "other side; ten views are few)"),
    "tracking.enabled": ParameterSpec(True, "track objects across frames: /object_labels gains track_id and a label "
                                      "fused over the track's frames; ~/detections' id is the track id"),
    "tracking.gate": ParameterSpec(_TRK.gate, "metres between a track's predicted centroid and a detection's, beyond "
                                   "which they cannot be the same object", (0.005, 2.0), dynamic=True),
    "tracking.min_iou": ParameterSpec(_TRK.min_iou, "image-box overlap a track and a detection need where either "
                                      "has no valid depth", (0.01, 0.99), dynamic=True),
    "tracking.confirm_hits": ParameterSpec(_TRK.confirm_hits, "frames a new track must be seen in before it is "
                                           "confirmed", (1, 100), dynamic=True),
    "tracking.tentative_misses": ParameterSpec(_TRK.tentative_misses, "frames in a row a tentative (not yet "
                                               "confirmed) track may go unseen before it ends", (0, 100),
                                               dynamic=True),
    "tracking.max_misses": ParameterSpec(_TRK.max_misses, "frames in a row a confirmed track may go unseen (lost, "
                                         "still matchable) before it ends", (0, 10_000), dynamic=True),
    "tracking.extent_weight": ParameterSpec(_TRK.extent_weight, "association cost in metres per metre of change in "
                                            "the visible extent", (0.0, 10.0), dynamic=True),
    "tracking.velocity_smoothing": ParameterSpec(_TRK.velocity_smoothing, "weight of the newest measurement in a "
                                                 "track's velocity (camera-frame drift as the camera moves)",
                                                 (0.0, 1.0), dynamic=True),
    "tracking.decay": ParameterSpec(_TRK.decay, "per-frame decay of a track's class evidence (memory ~1/(1-decay) "
                                    "frames); 1 = never forget", (0.5, 1.0), dynamic=True),
    "tracking.floor": ParameterSpec(_TRK.floor, "smallest per-frame likelihood a class gets: bounds what one bad view "
                                    "can do to the fused label", (0.001, 0.49), dynamic=True),
    "tracking.switch_margin": ParameterSpec(_TRK.switch_margin, "nats of evidence a new label needs over the track's "
                                            "current one before the fused label changes", (0.0, 100.0),
                                            dynamic=True),
    "segmentation.mode": ParameterSpec(_SEG.mode, "depth, mask or full", choices=("depth", "mask", "full")),
    "segmentation.min_depth": ParameterSpec(_SEG.min_depth, "metres", (0.0, 20.0)),
    "segmentation.max_depth": ParameterSpec(_SEG.max_depth, "metres", (0.0, 20.0)),
    "segmentation.min_height": ParameterSpec(_SEG.min_height, "above the table, metres", (0.0, 5.0)),
    "segmentation.max_height": ParameterSpec(_SEG.max_height, "above the table, metres", (0.0, 5.0)),
    "segmentation.grow_height": ParameterSpec(_SEG.grow_height, "pixels above this height join an object reaching "
                                          "min_height, metres", (0.0, 5.0)),
    "segmentation.min_area": ParameterSpec(_SEG.min_area, "pixels", (1, 100_000_000)),
    "segmentation.max_area": ParameterSpec(_SEG.max_area, "pixels of a 640x480 image; scaled up with a larger image's pixel count", (1, 100_000_000)),
    "segmentation.depth_jump": ParameterSpec(_SEG.depth_jump, "metres at 1 m between two objects", (0.001, 1.0)),
    "segmentation.crease": ParameterSpec(_SEG.crease, "concave-crease cut between touching objects (sag / chord); "
                                     "0 = off", (0.0, 10.0)),
    "segmentation.rejoin_colour": ParameterSpec(_SEG.rejoin_colour, "pieces cut at a crease rejoin below this CIELAB "
                                            "colour distance", (0.0, 500.0)),
    "segmentation.rejoin_histogram": ParameterSpec(_SEG.rejoin_histogram, "...and only where their colour "
                                               "histograms are this close too (1 - Bhattacharyya coefficient, "
                                               "CIELAB); 1 = the mean colour alone decides, 0 = pieces never "
                                               "rejoin", (0.0, 1.0)),
    "segmentation.support": ParameterSpec(_SEG.support, "the surface objects stand on: highest = the highest large "
                                          "plane parallel to the dominant one (a table above the floor), dominant = "
                                          "the largest plane", choices=("highest", "dominant")),
    "segmentation.support_area": ParameterSpec(_SEG.support_area, "square metres a plane above the dominant one needs "
                                               "to be taken as the support (where no plane does, a surface at "
                                               "furniture height showing 0.02 m2 that holds something, nearer than "
                                               "the floor's middle: a stool, a chair's tablet)", (0.001, 100.0)),
    "segmentation.on_support": ParameterSpec(_SEG.on_support, "keep only segments whose base lies inside the "
                                             "support's outline (nothing beyond the table's edge)"),
    "segmentation.min_extent": ParameterSpec(_SEG.min_extent, "an object's largest visible size is at least this, "
                                             "metres", (0.0, 10.0)),
    "segmentation.max_extent": ParameterSpec(_SEG.max_extent, "...and at most this, metres (tables, chairs, walls "
                                             "are larger)", (0.0, 10.0)),
    "segmentation.split_large": ParameterSpec(_SEG.split_large, "cut a segment larger than max_extent at its narrow "
                                              "necks (objects touching a robot's base plate) and judge the parts "
                                              "before dropping it; the robot's pieces come out as unknown objects"),
    "segmentation.split_stacks": ParameterSpec(_SEG.split_stacks, "cut a segment where one object stands or lies "
                                               "on another's flat top and their colours differ (a can on a can, a "
                                               "drill on a box); the upper one's pose is measured from that top"),
    "segmentation.rejoin_openings": ParameterSpec(_SEG.rejoin_openings, "join a mug's, a cup's or a bowl's inside "
                                                  "to its front wall where the depth-jump cut parts them (seen from "
                                                  "above: two round walls, the inside within the outside's circle, "
                                                  "one object's colours)"),
    "segmentation.split_valleys": ParameterSpec(_SEG.split_valleys, "cut a segment at a low valley between two "
                                                "peaks, each at least 1 / 0.35 (2.9) times the valley's height above the "
                                                "support (objects a few centimetres apart that a stereo camera's "
                                                "smeared depth joins by a low ramp)"),
    "segmentation.padding": ParameterSpec(_SEG.padding, "crop padding per side (fraction)", (0.0, 2.0)),
    "segmentation.scale": ParameterSpec(_SEG.scale, "segment on every scale-th pixel (1, 2 or 4); 0 = auto (default): "
                                        "a grid about 320 samples wide, so 2 for 640x480 and 4 for 1280x720: the grid the "
                                        "segmentation's steps are tuned on (4 at most: 1920x1080 on 480 samples, "
                                        "3840x2160 on 960, slower)", (0, 4), choices=(0, 1, 2, 4)),
    "segmentation.mask_background": ParameterSpec(_SEG.mask_background, "grey out pixels outside the object"),
}


KIND_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


class ParameterError(ValueError):
    """A parameter name or value the node would refuse; the message names it."""


def unknown_parameter(name: str) -> str:
    """What to tell a user who named a parameter the node does not have: the nearest name, as a
    typo (`min_scor`) is the usual cause, instead of rclpy's "Invalid access to undeclared
    parameter(s)" or a list of all 40."""
    near = difflib.get_close_matches(name, list(PARAMETERS), n=1, cutoff=0.6)
    hint = f"did you mean {near[0]}?" if near else "the list: `ros2 param list`, doc/parameters.md"
    return f"{NODE_NAME} has no parameter {name!r} ({hint})"


def check_value(name: str, value: Any) -> Value:
    """The value as the node would accept it (ints widen to float parameters), else ParameterError."""
    if name not in PARAMETERS:
        raise ParameterError(unknown_parameter(name))
    spec = PARAMETERS[name]
    kind = type(spec.default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if spec.on_off and isinstance(value, bool):
        value = "on" if value else "off"
    if type(value) is not kind:
        raise ParameterError(f"{name} must be {KIND_NAMES[kind]}, got {value!r}")
    if kind is float and not math.isfinite(value):
        raise ParameterError(f"{name} must be finite, got {value!r}")
    if spec.range is not None and not spec.range[0] <= value <= spec.range[1]:
        raise ParameterError(f"{name} must be in [{spec.range[0]}, {spec.range[1]}], got {value!r}")
    if spec.choices is not None and value not in spec.choices:
        raise ParameterError(f"{name} must be one of {', '.join(map(str, spec.choices))}, got {value!r}")
    return value


def check_parameters(values: dict[str, Any] | None = None) -> dict[str, Value]:
    """Every parameter, defaults filled in, each value checked, then the cross-field rules
    (SegmentationParams'). Raises ParameterError naming the first problem."""
    out = {name: spec.default for name, spec in PARAMETERS.items()}
    for name, value in (values or {}).items():
        out[name] = check_value(name, value)
    try:
        segmentation(out)
        tracking(out)
    except ValueError as e:
        raise ParameterError(str(e)) from None
    return out


def segmentation(values: dict[str, Value]) -> SegmentationParams:
    return SegmentationParams(**{k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("segmentation.")},
                              max_objects=values["max_objects"])


def tracking(values: dict[str, Value]) -> TrackerParams:
    return TrackerParams.from_parameters(values)


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _section_matches(key: str, fqn: str) -> bool:
    """Whether a params file's node key applies to the node of full name `fqn`, as rcl decides
    it: a key without a leading slash is from the root namespace; `*` is part of one name, `**`
    any number of names (`/**` is every node)."""
    pattern = "".join("(/[^/]+)*" if part == "**" else "/" + re.escape(part).replace(r"\*", "[^/]*")
                      for part in key.strip("/").split("/"))
    return re.fullmatch(pattern, fqn) is not None


def node_fqn(namespace: str = "/", node_name: str = NODE_NAME) -> str:
    """/robot_classify, or /left_arm/robot_classify for namespace left_arm (as the launch file's
    `namespace:=left_arm` runs it)."""
    ns = "/".join(p for p in namespace.split("/") if p)
    return f"/{ns}/{node_name}" if ns else f"/{node_name}"


def read_params_file(path: str | Path, node_name: str = NODE_NAME, namespace: str = "/") -> dict[str, Value]:
    """The node's parameters from a ROS 2 params YAML file, as `--ros-args --params-file` gives
    them to the node named `node_name` in `namespace`: every section whose key names it (its
    full name, `robot_classify` for the root namespace, `/**`, wildcards), in file order;
    checked like the node checks them. A section for the same node in another namespace is not
    its: a file with `/left_arm/robot_classify` and `/right_arm/robot_classify` gives each arm
    its own values, and nothing to the node in the root namespace."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such params file: {path}")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ParameterError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None  # one line
    if not isinstance(doc, dict):
        raise ParameterError(f"{path}: a ROS 2 params file maps node names to ros__parameters")
    fqn = node_fqn(namespace, node_name)
    found: dict[str, Any] = {}
    for key, section in doc.items():
        if _section_matches(str(key), fqn):
            if not isinstance(section, dict) or not isinstance(section.get("ros__parameters"), dict):
                raise ParameterError(f"{path}: {key}: expected a 'ros__parameters' mapping")
            found.update(_flatten(section["ros__parameters"]))
    if not found:
        others = [str(k) for k in doc if str(k).rsplit("/", 1)[-1] == node_name]
        hint = (f"; it has {', '.join(others)}: give the node's namespace (--namespace)" if others else "")
        raise ParameterError(f"{path}: no parameters for node {fqn!r} (nor '/**'){hint}")
    unknown = [name for name in found if name not in PARAMETERS]
    if unknown:  # as on the robot: rclpy ignores a name the node does not declare, and the node warns
        log.warning("%s: %s: no such parameter of %s; ignored, as the node ignores it", path,
                    ", ".join(unknown), fqn)
    try:
        return check_parameters({k: v for k, v in found.items() if k in PARAMETERS})
    except ParameterError as e:
        raise ParameterError(f"{path}: {e}") from None
