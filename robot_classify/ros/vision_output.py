"""`~/detections`, `~/detections_3d`, `~/label_info`: the node's results as vision_msgs types.

A thin copy of `runtime.detections`' values into vision_msgs 4.1.x messages. vision_msgs is
imported here, lazily, and only here: it is not on PyPI, so where it is missing the node
publishes the JSON on /object_labels alone (`output.vision_msgs: auto`).
"""
from __future__ import annotations

from typing import Any, Sequence

from geometry_msgs.msg import Point
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..runtime.detections import Hypothesis, detections_2d, detections_3d, label_info
from ..runtime.results import FrameLabels

TOPICS = ("~/detections", "~/detections_3d", "~/label_info")


def import_vision_msgs() -> tuple[Any | None, str]:
    """(vision_msgs.msg, "") or (None, why not)."""
    try:
        from vision_msgs import msg
    except Exception as e:  # noqa: BLE001 -- a half-installed package raises more than ImportError
        return None, f"{type(e).__name__}: {e}"
    return msg, ""


def _refusal(why: str) -> str:
    return (f"output.vision_msgs is 'on' but vision_msgs does not import ({why}); install it (sudo apt install "
            "ros-jazzy-vision-msgs) and source the ROS setup, or set output.vision_msgs to auto or off")


class VisionOutput:
    """Publishers of the typed interface; `create` decides from `output.vision_msgs`."""

    def __init__(self, node: Node, vm: Any) -> None:
        self._node, self._vm = node, vm
        results_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.pub_2d = node.create_publisher(vm.Detection2DArray, TOPICS[0], results_qos)
        self.pub_3d = node.create_publisher(vm.Detection3DArray, TOPICS[1], results_qos)
        # Like a latched CameraInfo: a consumer started later still gets the class map.
        self.pub_info = node.create_publisher(vm.LabelInfo, TOPICS[2], QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL))

    @staticmethod
    def require(mode: str) -> None:
        """RuntimeError when `mode` is "on" and vision_msgs does not import (checked first, so the
        node refuses at once rather than after loading its model)."""
        if mode == "on" and import_vision_msgs()[0] is None:
            raise RuntimeError(_refusal(import_vision_msgs()[1]))

    @classmethod
    def create(cls, node: Node, mode: str) -> "VisionOutput | None":
        """`off`: None. `auto`: publishers when vision_msgs imports, else None; one info line
        says which. `on`: publishers, or RuntimeError (the node refuses to start)."""
        if mode == "off":
            return None
        vm, why = import_vision_msgs()
        if vm is None:
            if mode == "on":
                raise RuntimeError(_refusal(why))
            if not getattr(node, "_said_vision_msgs_absent", False):  # once per node, not at every activation
                node._said_vision_msgs_absent = True
                node.get_logger().info(f"vision_msgs does not import ({why}): publishing "
                                       f"{node.resolve_topic_name('object_labels')} JSON only (output.vision_msgs: auto)")
            return None
        try:
            out = cls(node, vm)
        except Exception as e:  # noqa: BLE001 -- importable but unusable (e.g. its typesupport library missing)
            if mode == "on":
                raise RuntimeError(f"output.vision_msgs is 'on' but vision_msgs cannot publish "
                                   f"({type(e).__name__}: {e})") from None
            node.get_logger().info(f"vision_msgs cannot publish ({type(e).__name__}: {e}): publishing "
                                   f"{node.resolve_topic_name('object_labels')} JSON only (output.vision_msgs: auto)")
            return None
        node.get_logger().info("vision_msgs found: also publishing " + ", ".join(
            p.topic_name for p in (out.pub_2d, out.pub_3d, out.pub_info)))
        return out

    def _results(self, hyps: tuple[Hypothesis, ...]) -> list:
        out = []
        for h in hyps:
            r = self._vm.ObjectHypothesisWithPose()
            r.hypothesis.class_id, r.hypothesis.score = h.class_id, h.score
            r.pose.pose.position = Point(x=h.position[0], y=h.position[1], z=h.position[2])
            r.pose.pose.orientation.w = 1.0
            out.append(r)
        return out

    def publish(self, labels: FrameLabels, header: Any, tracking: bool = False) -> None:
        """Both arrays for one frame, stamped with the colour image's header (copied, never now);
        `tracking`: the node tracks, so ids are track ids (`detections.detection_id`)."""
        vm = self._vm
        arr2 = vm.Detection2DArray(header=header)
        for f in detections_2d(labels, tracking):
            d = vm.Detection2D(header=header, id=f.id, results=self._results(f.results))
            d.bbox.center.position.x, d.bbox.center.position.y = f.center
            d.bbox.size_x, d.bbox.size_y = f.size
            arr2.detections.append(d)
        found, _ = detections_3d(labels, tracking)  # those without depth: the node counts them
        arr3 = vm.Detection3DArray(header=header)
        for f in found:
            d = vm.Detection3D(header=header, id=f.id, results=self._results(f.results))
            d.bbox.center.position = Point(x=f.center[0], y=f.center[1], z=f.center[2])
            d.bbox.center.orientation.w = 1.0
            d.bbox.size.x, d.bbox.size.y, d.bbox.size.z = f.size
            arr3.detections.append(d)
        self.pub_2d.publish(arr2)
        self.pub_3d.publish(arr3)

    def publish_label_info(self, class_names: Sequence[str], min_score: float) -> None:
        fields = label_info(class_names, min_score)
        msg = self._vm.LabelInfo(threshold=fields.threshold, class_map=[
            self._vm.VisionClass(class_id=i, class_name=name) for i, name in fields.class_map])
        msg.header.stamp = self._node.get_clock().now().to_msg()
        self.pub_info.publish(msg)
