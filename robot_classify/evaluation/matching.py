"""Box matching moved to `robot_classify.data.matching` (below sim and evaluation, which both use it);
these names stay importable from here."""
from ..data.matching import Box, bbox_tuple, box_iou, match_boxes  # noqa: F401
