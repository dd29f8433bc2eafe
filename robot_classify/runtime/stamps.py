"""ROS time stamps (builtin_interfaces/Time: sec + nanosec) <-> integer nanoseconds.

Frames are paired, looked up and reported by one integer key per stamp. ROS-free: the
arguments are plain numbers, so the same helpers serve rclpy messages, rosbags messages
(same field names) and the JSON `{"sec", "nanosec"}` of /object_labels documents.
"""
from __future__ import annotations

NS_PER_S = 1_000_000_000


def stamp_to_ns(sec: int, nanosec: int) -> int:
    return int(sec) * NS_PER_S + int(nanosec)


def ns_to_stamp(ns: int) -> tuple[int, int]:
    """(sec, nanosec) with 0 <= nanosec < 10^9."""
    sec, nanosec = divmod(int(ns), NS_PER_S)
    return sec, nanosec


def header_to_ns(header) -> int:
    """A std_msgs/Header's stamp (rclpy's or rosbags'), in nanoseconds."""
    return stamp_to_ns(header.stamp.sec, header.stamp.nanosec)
