"""replay-eval times frames with the node's one thread per step, and gives the process its own back."""
import cv2
import torch
from threadpoolctl import threadpool_info

from robot_classify.runtime.threads import node_threads


def test_node_threads_for_a_block_then_the_process_settings_again():
    torch.set_num_threads(2)
    cv2.setNumThreads(2)
    with node_threads():
        assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info())
    assert torch.get_num_threads() == 2 and cv2.getNumThreads() == 2
