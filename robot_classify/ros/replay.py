"""Publish a bag's messages through rclpy with their original relative timing.

For machines without rosbag2 (`ros2 bag play`). Messages are deserialized by rclpy from the
bag's CDR bytes (the same wire format), optionally re-stamped to "now + original offset" so
every topic of one frame keeps one shared stamp.
"""
from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..data.bags import SEQUENCE_GAP_S, open_reader

from ..runtime.stamps import header_to_ns, ns_to_stamp
from ..runtime.tracking import RESET_GAP_S

TRANSPORTS = ("/compressed", "/compressedDepth")
# What a camera driver publishes: the topics a receiving node subscribes to. The others a bag may
# hold (its ground truth, a recorder's /tf) need no listener before the replay starts.
CAMERA_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/CameraInfo")


def _msg_class(msgtype: str):
    pkg, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


DISCOVERY_SETTLE_S = 1.0  # after the subscribers matched, before the first message (`wait_for_subscribers`)
class Pace:
    """Where each message plays, in ns after the first: the bag's time line divided by `rate`,
    except that a silence that ends every track (longer than the tracker's RESET_GAP_S: between two
    scenes of an imported dataset, a camera's dropout) plays at least as long as the bag writer's
    gap between two recordings (`bags.SEQUENCE_GAP_S`). At --rate 2 the 6 s between two imported
    scenes had become 3 s, and the live node's tracks ran from one scene's objects on to the
    next's (found in review). Stamps and the wall clock follow the same offsets, so stamps never
    run ahead of the clock."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.t0: int | None = None
        self.last: int | None = None
        self.kept_ns = 0  # the silences' time added so far

    def offset_ns(self, t: int) -> int:
        if self.t0 is None:
            self.t0 = t
        elif t - self.last > RESET_GAP_S * 1e9:
            self.kept_ns += max(0, round(SEQUENCE_GAP_S * 1e9 - (t - self.last) / self.rate))
        self.last = t if self.last is None else max(self.last, t)
        return round((t - self.t0) / self.rate) + self.kept_ns


def replay(bag: str | Path, rate: float = 1.0, loop: bool = False, qos: str = "reliable", keep_stamps: bool = False,
           topics: list[str] | None = None, on_message: Callable[[str, object], None] | None = None,
           should_stop: Callable[[], bool] = lambda: False, wait_for_subscribers: float | None = None) -> int:
    """Play the bag (once, or until `should_stop` with `loop`); returns messages published.
    `topics`: those topics and their image_transport transports (`<topic>/compressed`,
    `<topic>/compressedDepth`) where the bag has them; None: every topic.

    `wait_for_subscribers`: seconds to wait, before the first message, until every camera topic
    played (`CAMERA_TYPES`; every topic where the bag has none) is matched by at least one
    subscription (TimeoutError naming the topics without one), then DISCOVERY_SETTLE_S more for
    the subscribers to discover the publishers in turn; None: half a second for
    discovery, and whoever is there by then gets the messages (a node still starting loses them).
    """
    import rclpy
    from rclpy.duration import Duration
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.serialization import deserialize_message

    if rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    if qos not in ("reliable", "best_effort"):
        raise ValueError(f"qos must be reliable or best_effort, got {qos!r}")
    if wait_for_subscribers is not None and wait_for_subscribers < 0:
        raise ValueError(f"wait_for_subscribers must be >= 0 seconds, got {wait_for_subscribers}")
    reader = open_reader(bag)
    # A topic asked for brings its image_transport transports along (a robot's bag may hold only those)
    wanted = None if topics is None else {f"{t}{s}" for t in topics for s in ("", *TRANSPORTS)}
    conns = [c for c in reader.connections if wanted is None or c.topic in wanted]
    if not conns:
        reader.close()
        raise ValueError(f"{bag}: none of the topics {topics} are in the bag")
    own_context = not rclpy.ok()
    if own_context:
        rclpy.init()
    node = rclpy.create_node("robot_classify_replay")
    profile = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE if qos == "reliable"
                         else ReliabilityPolicy.BEST_EFFORT)
    classes = {c.topic: _msg_class(c.msgtype) for c in conns}
    pubs = {t: node.create_publisher(cls, t, profile) for t, cls in classes.items()}
    sent, interrupted = 0, False
    try:
        if wait_for_subscribers is None:
            time.sleep(0.5)  # discovery: let subscribers match before the first message
        else:
            camera = {c.topic for c in conns if c.msgtype in CAMERA_TYPES}
            _wait_matched({t: pub for t, pub in pubs.items() if t in camera or not camera}, wait_for_subscribers)
            # A match seen here is the publisher's side of discovery; the subscriber may not know this
            # publisher yet, and drops what comes before it does. Seen in the demo: a fresh clone's
            # first run lost the first 9 frames' camera_info (21 of 30 labelled).
            time.sleep(DISCOVERY_SETTLE_S)
        paced = next((c.topic for c in conns if c.msgtype in CAMERA_TYPES), conns[0].topic)
        while True:
            pace, wall0 = Pace(rate), None
            offset_ns = time.time_ns()
            times = []  # of one camera topic: the bag's frame period, kept between two passes
            for conn, t, raw in reader.messages(connections=conns):
                if should_stop():
                    return sent  # noqa: B012 -- the finally block still runs
                if not rclpy.ok():  # Ctrl-C: rclpy's handler shut the context down (it need not raise here)
                    raise KeyboardInterrupt
                at = pace.offset_ns(t)
                if wall0 is None:
                    wall0 = time.monotonic()
                delay = wall0 + at / 1e9 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                msg = deserialize_message(bytes(raw), classes[conn.topic])
                if not keep_stamps and hasattr(msg, "header"):
                    # The offset scaled as the playback is: at --rate 2 the stamps had run ahead of
                    # the clock and stepped back at every loop (found from outside).
                    # Only the recording's timeline is scaled: each message keeps its stamp's own offset
                    # from its log time, so colour and depth stay within sync_slop at any rate.
                    stamp = offset_ns + at + header_to_ns(msg.header) - t
                    msg.header.stamp.sec, msg.header.stamp.nanosec = ns_to_stamp(stamp)
                pubs[conn.topic].publish(msg)
                sent += 1
                if conn.topic == paced:
                    times.append(t)
                if on_message is not None:
                    on_message(conn.topic, msg)
            if not loop:
                break
            # A frame period before the next pass, as within one: 7 ms had parted the last frame of a
            # pass from the first of the next, inside sync_slop, so two scenes' images could pair.
            time.sleep(float(np.median(np.diff(times))) / 1e9 / rate if len(times) > 1 else 1 / 30 / rate)
        return sent
    except BaseException as e:
        # Ctrl-C: rclpy's handler shuts the context down on its own thread while Python raises
        # KeyboardInterrupt here, in either order; a publish under the closed context raises too,
        # and one raised inside a message's constructor called from rclpy's C++ comes out as
        # pybind11's TypeError ("Unable to convert function return value") caused by it
        interrupted = _from_ctrl_c(e) or not rclpy.ok()
        if interrupted and not isinstance(e, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        raise
    finally:
        if qos == "reliable" and sent and not interrupted:  # subscribers get the last messages before teardown
            try:
                for pub in pubs.values():
                    pub.wait_for_all_acked(Duration(seconds=5))
            except Exception:
                if rclpy.ok():  # else Ctrl-C came during the wait: the context is gone, and so is the wait
                    raise
        reader.close()
        node.destroy_node()
        if own_context:
            rclpy.try_shutdown()


def _from_ctrl_c(e: BaseException | None) -> bool:
    """Whether `e` is a KeyboardInterrupt or was caused by one (its chain of causes)."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False


def _wait_matched(pubs: dict, timeout: float) -> None:
    """Until each publisher is matched by a subscription (discovered, with compatible QoS)."""
    deadline = time.monotonic() + timeout
    while True:
        waiting = sorted(t for t, pub in pubs.items() if pub.get_subscription_count() == 0)
        if not waiting:
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"no subscriber matched {', '.join(waiting)} within {timeout:g} s "
                               "(is the receiving node running, on this ROS_DOMAIN_ID, with compatible QoS?)")
        time.sleep(0.05)
