import subprocess
import sys

from robot_classify.allocator import keep_frame_buffers


def test_keep_frame_buffers_is_accepted_or_a_clean_no_op():
    accepted = keep_frame_buffers()
    assert accepted in (True, False)
    if sys.platform != "linux":
        assert accepted is False


def test_library_import_leaves_the_allocator_alone():
    """Only entry points tune the process; importing the package must not."""
    code = ("import sys, robot_classify.patches, robot_classify.frame_processor; "
            "sys.exit(int('robot_classify.allocator' in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
