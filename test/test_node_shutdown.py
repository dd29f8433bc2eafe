"""How classify_node starts badly and ends: one line for what rcl refuses before the node exists,
and a clean exit however many Ctrl-Cs reach it (`ros2 launch` forwards the terminal's)."""
import signal
import time

import pytest

pytest.importorskip("rclpy")

from ros_harness import start_node  # noqa: E402 -- also the isolated discovery settings, for the node too

pytestmark = pytest.mark.ros


def test_ctrl_c_again_during_teardown_still_exits_cleanly(default_model_file):
    """Found from outside: a terminal's Ctrl-C under `ros2 launch` reaches the node twice, and
    the second one broke teardown (a KeyboardInterrupt traceback, exit code -2, in 8 of 13
    tries). Here a SIGINT every 10 ms until the node is gone: every one after the first lands
    in teardown or the interpreter's exit."""
    proc, log = start_node(["-p", f"model_path:={default_model_file}", "-p", "device:=cpu"])
    try:
        end = time.monotonic() + 120
        while not any("ready:" in line for line in log) and proc.poll() is None and time.monotonic() < end:
            time.sleep(0.05)
        assert any("ready:" in line for line in log), "\n".join(log[-10:])
        sent = 0
        while proc.poll() is None and sent < 3000:
            proc.send_signal(signal.SIGINT)
            sent += 1
            time.sleep(0.01)
        assert proc.wait(30) == 0, "\n".join(log[-15:])
        time.sleep(0.2)  # the reader thread's last lines
        assert sent > 1 and not any("Traceback" in line or "KeyboardInterrupt" in line for line in log), \
            "\n".join(log[-15:])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_a_params_file_rcl_cannot_parse_is_one_fatal_line(tmp_path):
    """rclpy.init parses --ros-args before any node exists; its error was a traceback."""
    bad = tmp_path / "params.yaml"
    bad.write_text("? [1, 2]\n: 3\n")  # a sequence as a key: YAML, but no parameters file
    proc, log = start_node(["--params-file", str(bad)])
    try:
        assert proc.wait(60) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    time.sleep(0.2)
    out = "\n".join(log)
    assert "cannot start: RCLError" in out and "params file" in out and "Traceback" not in out, out
