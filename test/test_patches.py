import numpy as np
import pytest

from robot_classify.runtime.camera import Intrinsics
from robot_classify.evaluation.matching import bbox_tuple, box_iou, match_boxes
from robot_classify.runtime.patches import SegmentationParams, crop_patch, extract_objects, grid_scale, segment_depth

from scene_fixtures import rendered

K = Intrinsics(615.0, 615.0, 320.0, 240.0)


def synthetic_table(objects=(), h=480, w=640, z_table=1.0):
    """A fronto-parallel table at z_table with boxes standing on it (depth in mm)."""
    depth = np.full((h, w), z_table * 1000, np.uint16)
    color = np.full((h, w, 3), 90, np.uint8)
    for (x, y, bw, bh, z, rgb) in objects:
        depth[y:y + bh, x:x + bw] = int(z * 1000)
        color[y:y + bh, x:x + bw] = rgb
    return color, depth


def test_finds_rendered_objects_with_good_boxes_and_centroids():
    s = rendered(4)
    ex = extract_objects(s.color, s.depth, Intrinsics(**s.meta["intrinsics"]))
    assert ex.warning is None and ex.plane is not None
    gts = [o for o in s.meta["objects"] if o["visible_fraction"] >= 0.5 and o["pixels"] > 500]
    pairs = match_boxes([o.bbox for o in ex.objects], [bbox_tuple(g["bbox"]) for g in gts])
    assert len(pairs) >= len(gts) - 1
    for i, j, _ in pairs:
        err = np.linalg.norm(ex.objects[i].centroid - [gts[j]["centroid"][a] for a in "xyz"])
        assert err < 0.03
    assert ex.patches.shape == (len(ex.objects), 32, 32, 3)


def test_each_patch_is_cut_once_when_first_read_and_as_crop_patch_cuts_it():
    """Patches are cut lazily (the node crops only what it classifies): the same crop as
    `crop_patch` of the object's box and mask, cut once, and `patches_of` cuts only those asked."""
    s = rendered(4)
    ex = extract_objects(s.color, s.depth, Intrinsics(**s.meta["intrinsics"]))
    assert len(ex.objects) >= 3 and all(o._patch is None for o in ex.objects)
    which = np.arange(len(ex.objects)) % 2 == 0
    batch = ex.patches_of(which)
    assert [o._patch is not None for o in ex.objects] == list(which)
    for o, p in zip([o for o, w in zip(ex.objects, which) if w], batch):
        np.testing.assert_array_equal(p, crop_patch(s.color, o.bbox, 0.15, o.mask))
        assert o.patch is o.patch  # cut once
    assert ex.patches_of(np.zeros(len(ex.objects), bool)).shape == (0, 32, 32, 3)
    unmasked = extract_objects(s.color, s.depth, Intrinsics(**s.meta["intrinsics"]),
                               SegmentationParams(mask_background=False)).objects[0]
    np.testing.assert_array_equal(unmasked.patch, crop_patch(s.color, unmasked.bbox, 0.15))


@pytest.mark.parametrize("shape", [(720, 629, 3), (371, 300, 3), (201, 640, 3), (300, 250), (64, 700, 3)])
def test_a_large_crop_is_averaged_down_as_opencvs_inter_area_does(shape):
    """`area_mean` (the integral image) stands in for OpenCV's INTER_AREA on large crops, where
    that is slow: the same means, rounded alike but where a mean falls within float32's error of
    a half (one value off by one level at most)."""
    from robot_classify.runtime.patches import AREA_SUMS_PIXELS, area_mean
    import cv2
    rng = np.random.default_rng(sum(shape))
    noise = rng.integers(0, 256, shape, dtype=np.uint8)
    smooth = cv2.GaussianBlur(noise, (0, 0), 6)
    for image in (noise, smooth):
        ours, theirs = area_mean(image, 32), cv2.resize(image, (32, 32), interpolation=cv2.INTER_AREA)
        assert ours.shape == theirs.shape and ours.dtype == np.uint8
        diff = np.abs(ours.astype(int) - theirs)
        assert diff.max() <= 1 and (diff > 0).sum() <= 2
    # crop_patch takes this path for a crop this large: the crop of the whole image, greyed or not
    if len(shape) == 3 and shape[0] * shape[1] >= AREA_SUMS_PIXELS:
        h, w = shape[:2]
        box = (w // 2 - 5, h // 2 - 5, 10, 10)  # padded to a square, clipped at the border
        grown = crop_patch(smooth, box, padding=max(h, w) / 10.0)
        np.testing.assert_array_equal(grown, area_mean(smooth, 32))


def test_touching_objects_at_different_depths_are_split():
    color, depth = synthetic_table([(200, 200, 60, 80, 0.90, (200, 0, 0)), (260, 200, 60, 80, 0.82, (0, 0, 200))])
    ex = extract_objects(color, depth, K, SegmentationParams(min_height=0.02))
    assert len(ex.objects) == 2
    boxes = sorted(o.bbox for o in ex.objects)
    assert box_iou(boxes[0], (200, 200, 60, 80)) > 0.8 and box_iou(boxes[1], (260, 200, 60, 80)) > 0.8
    z = sorted(o.centroid[2] for o in ex.objects)
    assert z == pytest.approx([0.82, 0.90], abs=0.005)


def standing_cylinders(colors, radius=0.04, axis_z=0.96, z_table=1.0, h=480, w=640):
    """Upright cylinders side by side, touching, seen from the front: their surfaces meet at the
    axis depth, so depth alone runs on smoothly from one to the other (a concave crease)."""
    depth = np.full((h, w), z_table, np.float32)
    color = np.full((h, w, 3), 90, np.uint8)
    r_px = K.fx * radius / axis_z
    boxes = []
    for i, rgb in enumerate(colors):
        xc = 200 + r_px + 2 * r_px * i
        x0, x1 = int(np.ceil(xc - r_px)), int(np.floor(xc + r_px))
        dx = (np.arange(x0, x1 + 1) - xc) / r_px * radius
        depth[150:330, x0:x1 + 1] = axis_z - np.sqrt(np.clip(radius**2 - dx**2, 0, None))
        color[150:330, x0:x1 + 1] = rgb
        boxes.append((x0, 150, x1 + 1 - x0, 180))
    return color, depth, boxes


def test_touching_objects_at_equal_depth_split_at_the_crease_when_colors_differ():
    color, depth, boxes = standing_cylinders([(200, 30, 30), (30, 30, 200)])
    ex = extract_objects(color, depth, K)
    assert len(ex.objects) == 2
    assert all(max(box_iou(o.bbox, b) for b in boxes) > 0.8 for o in ex.objects)
    # off: one blob; same colour: one object folded, not two objects
    assert len(extract_objects(color, depth, K, SegmentationParams(crease=0)).objects) == 1
    same, depth, _ = standing_cylinders([(200, 30, 30), (200, 30, 30)])
    assert len(extract_objects(same, depth, K).objects) == 1


def test_touching_products_of_one_mean_colour_part_when_their_colours_differ():
    """A white-and-navy product beside a plain one of the same mean colour (a Domino box beside
    a Master Chef can): the mean alone rejoined them, their histograms part them. One object's
    pieces show the same colours and still rejoin (the test above)."""
    color, depth, boxes = standing_cylinders([(0, 0, 0), (0, 0, 0)])
    x0, y0, w, h = boxes[0]
    stripes = np.where((np.arange(h) // 6 % 2 == 0)[:, None, None], (230, 230, 230), (20, 30, 110))
    color[y0:y0 + h, x0:x0 + w] = stripes
    mean = color[y0:y0 + h, x0:x0 + w].reshape(-1, 3).mean(0).round().astype(np.uint8)
    x1, _, w1, _ = boxes[1]
    color[y0:y0 + h, x1:x1 + w1] = mean
    ex = extract_objects(color, depth, K)
    assert len(ex.objects) == 2
    assert all(max(box_iou(o.bbox, b) for b in boxes) > 0.8 for o in ex.objects)
    assert len(extract_objects(color, depth, K, SegmentationParams(rejoin_histogram=1.0)).objects) == 1
    with pytest.raises(ValueError, match="rejoin_histogram must be in"):
        SegmentationParams(rejoin_histogram=1.5)


def test_low_object_is_found_whole_through_hysteresis():
    """A low, tilted object (a lid leaning on something flat) clears min_height only at its high
    end; the rest joins from grow_height. Table noise alone never reaches min_height."""
    color, depth = synthetic_table()
    depth = depth.astype(np.float32) / 1000
    height = np.linspace(0.004, 0.016, 40)  # rows 220..259
    depth[220:260, 250:390] = (1.0 - height)[:, None]
    color[220:260, 250:390] = (240, 240, 240)
    whole = extract_objects(color, depth, K)
    assert len(whole.objects) == 1 and whole.objects[0].bbox[3] >= 30
    top_only = extract_objects(color, depth, K, SegmentationParams(grow_height=0.012))
    assert len(top_only.objects) == 1 and top_only.objects[0].bbox[3] <= 15


def test_dropout_band_across_an_object_does_not_split_it():
    color, depth = synthetic_table([(250, 150, 120, 160, 0.9, (0, 160, 0))])
    rng = np.random.default_rng(0)
    band = depth[225:229, 250:370]
    band[rng.random(band.shape) < 0.7] = 0  # a dark label: structured light loses most pixels
    ex = extract_objects(color, depth, K)
    assert len(ex.objects) == 1 and box_iou(ex.objects[0].bbox, (250, 150, 120, 160)) > 0.9


def test_color_depth_size_mismatch_names_both_shapes():
    color, depth = synthetic_table()
    with pytest.raises(ValueError, match=r"depth \(240, 320\) and colour \(480, 640\)"):
        extract_objects(color, depth[::2, ::2], K)


def test_all_invalid_depth_gives_empty_result_with_warning():
    color, _ = synthetic_table()
    for bad in (np.zeros((480, 640), np.uint16), np.full((480, 640), np.nan, np.float32)):
        ex = extract_objects(color, bad, K)
        assert ex.objects == [] and ex.warning.startswith("no valid depth between")  # not "no plane found"
        assert "millimetres" not in ex.warning
    # found from outside: a 32FC1 image in millimetres read as "is the depth camera blind?"
    ex = extract_objects(color, synthetic_table()[1].astype(np.float32), K)
    assert ex.objects == [] and "(its depth is around 1000 m: millimetres in a 32FC1 image" in ex.warning


def test_nan_and_inf_depth_are_treated_as_invalid():
    color, depth = synthetic_table([(300, 220, 50, 50, 0.9, (0, 200, 0))])
    z = depth.astype(np.float32) / 1000
    z[::7, ::5] = np.nan
    z[100:110, :] = np.inf
    ex = extract_objects(color, z, K)
    assert len(ex.objects) == 1 and np.isfinite(ex.objects[0].centroid).all()


def test_zero_intrinsics_rejected():
    with pytest.raises(ValueError, match="focal lengths must be > 0"):
        Intrinsics.from_k([0, 0, 320, 0, 0, 240, 0, 0, 1])


def test_object_touching_the_border_is_cropped_inside_the_image():
    color, depth = synthetic_table([(0, 0, 40, 60, 0.9, (250, 250, 0))])
    ex = extract_objects(color, depth, K)
    assert len(ex.objects) == 1 and ex.objects[0].bbox[:2] == (0, 0)
    assert ex.objects[0].patch.shape == (32, 32, 3)


def test_mask_mode_and_full_mode():
    color, depth = synthetic_table()
    mask = np.zeros((480, 640), np.uint16)
    mask[10:60, 10:80] = 3
    mask[200:300, 300:320] = 9
    ex = extract_objects(color, depth, K, SegmentationParams(mode="mask"), instance_mask=mask)
    assert sorted(o.bbox for o in ex.objects) == [(10, 10, 70, 50), (300, 200, 20, 100)]
    full = extract_objects(color, None, None, SegmentationParams(mode="full"))
    assert len(full.objects) == 1 and full.objects[0].bbox == (0, 0, 640, 480) and full.objects[0].centroid is None
    with pytest.raises(ValueError, match="mask mode needs"):
        extract_objects(color, depth, K, SegmentationParams(mode="mask"))


def test_no_objects_on_an_empty_table():
    color, depth = synthetic_table()
    ex = extract_objects(color, depth, K)
    assert ex.objects == [] and ex.warning is None


def test_crop_patch_matches_inter_area_of_the_padded_square():
    import cv2

    img = np.random.default_rng(0).integers(0, 256, (100, 100, 3), dtype=np.uint8)
    got = crop_patch(img, (40, 40, 20, 10), padding=0.5)
    np.testing.assert_array_equal(got, cv2.resize(img[25:65, 30:70], (32, 32), interpolation=cv2.INTER_AREA))


def test_masked_crop_greys_exactly_the_pixels_outside_the_mask():
    import cv2

    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)
    mask = rng.random((10, 20)) < 0.6  # bbox-local, bbox (40, 40, 20, 10); the crop is [25:65, 30:70]
    full = np.zeros((100, 100), bool)
    full[40:50, 40:60] = mask
    expected = np.where(full[25:65, 30:70, None], img[25:65, 30:70], np.uint8(128))
    got = crop_patch(img, (40, 40, 20, 10), padding=0.5, mask=mask)
    np.testing.assert_array_equal(got, cv2.resize(expected, (32, 32), interpolation=cv2.INTER_AREA))
    # clipped at the border: the part of the box outside the image is simply not there
    edge = crop_patch(img, (0, 0, 20, 10), padding=0.5, mask=np.ones((10, 20), bool))
    assert edge.shape == (32, 32, 3)


@pytest.mark.parametrize("kwargs", [{"mode": "magic"}, {"min_depth": 2.0, "max_depth": 1.0}, {"max_objects": 0},
                                    {"min_area": 0}, {"padding": -1}, {"grow_height": 0.02},
                                    {"crease": -0.1}])
def test_bad_segmentation_params_rejected(kwargs):
    with pytest.raises(ValueError):
        SegmentationParams(**kwargs)


def test_greedy_matching_uses_each_box_once():
    pairs = match_boxes([(0, 0, 10, 10), (1, 1, 10, 10)], [(0, 0, 10, 10)])
    assert pairs == [(0, 0, 1.0)]


def test_mask_instances_cost_one_pass_whatever_the_ids_and_keep_the_largest():
    """A mask of 65,535 ids once took ~26 s (a whole-image comparison per id); now O(pixels)."""
    import time

    color = np.zeros((480, 640, 3), np.uint8)
    ids = (np.arange(480 * 640) % 65_000 + 3).astype(np.uint16).reshape(480, 640)  # 65,000 tiny instances
    ids[0:100, 0:100] = 65_535  # the largest, and the highest id
    ids[300:330, 300:330] = 2
    t0 = time.perf_counter()
    ex = extract_objects(color, None, None, SegmentationParams(mode="mask"), instance_mask=ids)
    assert time.perf_counter() - t0 < 2.0
    assert [o.bbox for o in ex.objects] == [(0, 0, 100, 100), (300, 300, 30, 30)]
    assert ex.objects[0].mask.all() and ex.objects[0].pixels == 100 * 100
    capped = extract_objects(color, None, None, SegmentationParams(mode="mask", max_objects=1), instance_mask=ids)
    assert [o.bbox for o in capped.objects] == [(0, 0, 100, 100)]
    with pytest.raises(ValueError, match=">= 0"):
        extract_objects(color, None, None, SegmentationParams(mode="mask"), instance_mask=-np.ones((480, 640), np.int32))


@pytest.mark.parametrize("scale", [2, 4])
def test_reduced_scale_finds_the_full_resolution_objects(scale):
    """Segmenting on every scale-th pixel gives the objects, boxes and masks of full resolution:
    touching cylinders are still cut at their crease, and each outline is redrawn from the
    full-resolution depth (boxes to the pixel, not to the grid)."""
    color, depth, boxes = standing_cylinders([(200, 30, 30), (30, 30, 200)])
    full = extract_objects(color, depth, K, SegmentationParams(scale=1))
    coarse = extract_objects(color, depth, K, SegmentationParams(scale=scale))
    assert len(coarse.objects) == len(full.objects) == 2
    for a, b in zip(sorted(full.objects, key=lambda o: o.bbox), sorted(coarse.objects, key=lambda o: o.bbox)):
        assert box_iou(a.bbox, b.bbox) > 0.9
        assert abs(a.pixels - b.pixels) < 0.1 * a.pixels
        assert b.mask.shape == (b.bbox[3], b.bbox[2])
        assert np.linalg.norm(a.centroid - b.centroid) < 0.005


@pytest.mark.parametrize("shape", [(481, 641), (479, 639), (242, 322)])
def test_odd_image_sizes_at_half_scale_stay_inside_the_image(shape):
    """Odd sizes leave a last row or column off the half-resolution grid; boxes, masks and the
    crease region must still lie inside the image, with objects at its edges."""
    h, w = shape
    color, depth = synthetic_table([(0, h // 3, 50, 60, 0.9, (200, 0, 0)), (w - 50, h - 60, 50, 60, 0.9, (0, 200, 0)),
                                    (w // 2, h // 2, 40, 40, 0.92, (0, 0, 200))], h=h, w=w)
    ex = extract_objects(color, depth, Intrinsics(600.0, 600.0, w / 2, h / 2), SegmentationParams(scale=2, min_area=100))
    assert len(ex.objects) == 3
    for o in ex.objects:
        x, y, bw, bh = o.bbox
        assert 0 <= x and 0 <= y and x + bw <= w and y + bh <= h and o.mask.shape == (bh, bw) and o.mask.any()


def test_float_metres_depth_at_half_scale_matches_millimetres():
    color, depth = synthetic_table([(200, 200, 60, 80, 0.90, (200, 0, 0))])
    a = extract_objects(color, depth, K, SegmentationParams(scale=2, min_height=0.02))
    b = extract_objects(color, depth.astype(np.float32) / 1000, K, SegmentationParams(scale=2, min_height=0.02))
    assert [o.bbox for o in a.objects] == [o.bbox for o in b.objects] and len(a.objects) == 1


def test_a_large_object_on_an_hd_camera_is_not_dropped_by_the_vga_area_limit():
    """max_area is for 640x480; a 1280x720 frame's near cracker box covers more pixels than that."""
    # a 16.5 x 20 cm box top, 15 cm above a table 60 cm away
    color, depth = synthetic_table([(500, 150, 330, 400, 0.45, (200, 40, 40))], h=720, w=1280, z_table=0.6)
    K720 = Intrinsics(900.0, 900.0, 640.0, 360.0)
    assert 330 * 400 > SegmentationParams().max_area
    ex = extract_objects(color, depth, K720)
    assert len(ex.objects) == 1 and box_iou(ex.objects[0].bbox, (500, 150, 330, 400)) > 0.9


@pytest.mark.parametrize("width, scale", [(320, 1), (424, 1), (640, 2), (848, 2), (1280, 4), (1920, 4)])
def test_auto_scale_keeps_the_grid_about_320_samples_wide(width, scale):
    assert grid_scale(SegmentationParams(), width) == scale
    assert grid_scale(SegmentationParams(scale=1), width) == 1  # a scale set by hand is kept


def test_auto_scale_splits_touching_objects_whose_edge_an_hd_camera_smears():
    """Real depth ramps over a few pixels where a near object meets a far one (and a depth image
    aligned to a 1280x720 colour camera is upsampled from a smaller one). On the 2-pixel grid of
    a 1280x720 frame no step of that ramp is a depth jump and the two boxes stay one segment; on
    the 4-pixel grid auto chooses, each step spans the angle it spans on a VGA frame at scale 2."""
    color, depth = synthetic_table([(500, 300, 120, 160, 0.90, (200, 0, 0)), (620, 300, 120, 160, 0.84, (200, 0, 0))],
                                   h=720, w=1280)
    ramp = 6  # pixels the edge between the two tops (6 cm apart) is smeared over
    d = depth.astype(np.float32)
    for i in range(ramp):
        d[300:460, 617 + i] = 900 - 60 * (i + 1) / (ramp + 1)
    depth = d.astype(np.uint16)
    K720 = Intrinsics(900.0, 900.0, 640.0, 360.0)
    assert len(extract_objects(color, depth, K720, SegmentationParams(scale=2, min_height=0.02)).objects) == 1
    auto = extract_objects(color, depth, K720, SegmentationParams(min_height=0.02))
    assert sorted(round(o.centroid[2], 2) for o in auto.objects) == [0.84, 0.9] and auto.scale == 4
    # a VGA frame is segmented as before auto existed: every second pixel
    vga = rendered(4)
    a = extract_objects(vga.color, vga.depth, Intrinsics(**vga.meta["intrinsics"]))
    b = extract_objects(vga.color, vga.depth, Intrinsics(**vga.meta["intrinsics"]), SegmentationParams(scale=2))
    assert [o.bbox for o in a.objects] == [o.bbox for o in b.objects] and len(a.objects) >= 3 and a.scale == 2


def test_segment_depth_with_auto_scale_reads_its_depth_as_the_cameras_own_grid():
    """`segment_depth` is given depth on some grid and cannot tell which: auto (0) takes it as
    the camera's own, as scale 1 does (0 used as a scale would divide by zero)."""
    from robot_classify.runtime.camera import depth_to_metres

    s = rendered(4)
    z, K4 = depth_to_metres(s.depth), Intrinsics(**s.meta["intrinsics"])
    auto, plane, warning = segment_depth(z, K4, SegmentationParams(), s.color)
    one, plane1, _ = segment_depth(z, K4, SegmentationParams(scale=1), s.color)
    assert warning is None and auto.any()
    np.testing.assert_array_equal(auto, one)
    np.testing.assert_array_equal(plane, plane1)


def test_millimetre_and_metre_depth_give_the_same_objects_to_the_bit():
    """The half-scale segmenter reads uint16 millimetres directly where it can (creases, the
    full-resolution outline): the objects must be exactly those of the same depth in float
    metres, holes included (dropouts along edges and in a band across the table)."""
    s = rendered(4)
    depth = s.depth.copy()
    rng = np.random.default_rng(0)
    depth[rng.random(depth.shape) < 0.03] = 0
    depth[200:206, :] = 0
    metres = depth.astype(np.float32) * np.float32(1e-3)  # as depth_to_metres converts; 0 -> NaN there
    a = extract_objects(s.color, depth, Intrinsics(**s.meta["intrinsics"]), SegmentationParams(scale=2))
    b = extract_objects(s.color, metres, Intrinsics(**s.meta["intrinsics"]), SegmentationParams(scale=2))
    assert len(a.objects) == len(b.objects) >= 3
    for oa, ob in zip(a.objects, b.objects):
        assert oa.bbox == ob.bbox and oa.pixels == ob.pixels
        np.testing.assert_array_equal(oa.mask, ob.mask)
        np.testing.assert_array_equal(oa.patch, ob.patch)
        np.testing.assert_array_equal(oa.centroid, ob.centroid)



@pytest.mark.parametrize("read", [(0, 0, 2), (0, 1, 4), (37, 53, 4), (6, 10, 4), (500, 5, 4)])
def test_creases_measured_only_where_read_are_the_creases_measured_everywhere(read):
    """A 1280x720 frame segmented on every 4th pixel reads every 2nd crease sample, and only
    those are measured (`_crease_samples(read=...)`): each one read is what measuring every
    sample gives, the rest are False."""
    from robot_classify.runtime.patches import _crease_samples

    s = rendered(4)
    K = Intrinsics(**s.meta["intrinsics"])
    box = (20, 30, 600, 470)
    full, X0, Y0, f = _crease_samples(s.depth, K, box, 0.05)
    assert full.any()
    got, *where = _crease_samples(s.depth, K, box, 0.05, read=read)
    assert where == [X0, Y0, f]
    y, x, step = read
    k = step // f
    r, c = ((v - o) // f for v, o in ((y, Y0), (x, X0)))
    at = np.zeros_like(full)
    at[r if r >= 0 else r % k::k, c if c >= 0 else c % k::k] = True  # (a negative start: the same class mod k)
    np.testing.assert_array_equal(got, full & at)


def test_the_full_resolution_rule_around_the_boxes_is_the_rule_over_the_whole_region():
    """The edge redraw's rule is computed around the kept objects (`_rules_around`), not over the
    region all objects lie in, and once for windows that overlap enough: every pixel
    `_refine_edges` reads is the same, the region's own border included."""
    from robot_classify.runtime.patches import REFINE_BAND, _full_resolution_rule, _rules_around

    s = rendered(4)
    K = Intrinsics(**s.meta["intrinsics"])
    ex = extract_objects(s.color, s.depth, K)
    params = SegmentationParams()
    region = (3, 5, 600, 470)
    whole = _full_resolution_rule(s.depth, K, ex.plane, params, region)
    b = REFINE_BAND + 1
    # the objects, two at the region's corners, a box inside another and two that overlap by half
    boxes = [o.bbox for o in ex.objects] + [(0, 0, 40, 30), (560, 440, 80, 40), (200, 200, 100, 80),
                                            (220, 210, 30, 30), (400, 100, 60, 60), (430, 100, 60, 60)]
    rules = _rules_around(boxes, region, s.depth, K, ex.plane, params)
    for box, (rule, (ox, oy)) in zip(boxes, rules):
        x, y, w, h = box
        X0, Y0 = max(region[0], x - b), max(region[1], y - b)
        X1, Y1 = min(region[2], x + w + b), min(region[3], y + h + b)
        np.testing.assert_array_equal(rule[Y0 - oy:Y1 - oy, X0 - ox:X1 - ox],
                                      whole[Y0 - region[1]:Y1 - region[1], X0 - region[0]:X1 - region[0]])
    assert rules[-4][0] is rules[-3][0] and rules[-2][0] is rules[-1][0]  # computed once each
    assert rules[-5][0] is not rules[-3][0]  # far apart: each its own


@pytest.mark.parametrize("scale", [1, 2])
def test_creases_are_measured_only_where_they_can_cut_and_as_over_the_whole_box(scale, monkeypatch):
    """`_split_at_creases` measures creases in windows around the components two pieces fit in
    (`_creases_around`), not over the box around the mask: inside those components every crease
    is what the whole box gives it, and a crease does not depend on the box it is measured in
    (at scale 1 a box of odd size once averaged every sample over a little more than 2x2 pixels)."""
    from robot_classify.runtime import patches as P

    s = rendered(4)
    K = Intrinsics(**s.meta["intrinsics"])
    seen = {}
    real = P._split_at_creases

    def capture(mask, z, K, color, params, fine=None):
        seen.update(mask=mask.copy(), z=z, K=K, params=params, fine=fine)
        return real(mask, z, K, color, params, fine)
    monkeypatch.setattr(P, "_split_at_creases", capture)
    extract_objects(s.color, s.depth, K, SegmentationParams(scale=scale))
    mask, z, Kz, params, fine = (seen[k] for k in ("mask", "z", "K", "params", "fine"))
    for y, x in ((7, 9), (31, 200), (150, 5), (201, 99)):  # specks no crease can cut, at odd places
        mask[y:y + 3, x:x + 3] = True
    box = P._mask_box(mask)
    x0, y0, x1, y1 = box
    _, comp, stats = P._label(mask[y0:y1, x0:x1])
    whole = P._creases_in(box, z, Kz, params, fine)
    monkeypatch.setattr(P, "CREASE_WINDOWS_FROM", 0)  # windows, in a VGA frame too
    around = P._creases_around(stats, box, z, Kz, params, fine)
    can = stats[:, 4] * scale ** 2 >= 2 * (params.min_area // 2)
    can[0] = False
    inside = can[comp]
    assert inside.any() and (mask[y0:y1, x0:x1] & ~inside).any() and whole[inside].any()
    np.testing.assert_array_equal(around[inside], whole[inside])
    assert not (around & ~whole).any()  # elsewhere: as the whole box gives it, or not measured (False)
    assert whole.sum() > around.sum()  # some were not measured
    odd = P._creases_in((x0 + 1, y0 + 1, x1 - 2, y1), z, Kz, params, fine)
    np.testing.assert_array_equal(odd, whole[1:, 1:-2])


def test_windows_join_where_the_rectangle_around_them_costs_less():
    from robot_classify.runtime.patches import _join_windows
    windows = [(0, 0, 10, 10), (2, 2, 12, 12), (100, 100, 110, 110), (112, 100, 120, 110), (300, 0, 301, 1)]
    rects, held = _join_windows(windows)
    assert sorted(zip(rects, held)) == [((0, 0, 12, 12), [0, 1]), ((100, 100, 110, 110), [2]),
                                        ((112, 100, 120, 110), [3]), ((300, 0, 301, 1), [4])]
    rects, held = _join_windows(windows, grow=1)  # read a pixel around each: the two 2 apart now touch
    assert ((100, 100, 120, 110), [2, 3]) in zip(rects, held)
    rects, held = _join_windows(windows, cost=100_000)  # a call costs more than any rectangle
    assert rects == [(0, 0, 301, 110)] and sorted(held[0]) == [0, 1, 2, 3, 4]
    assert _join_windows([]) == ([], []) and _join_windows([(1, 2, 3, 4)]) == ([(1, 2, 3, 4)], [[0]])


def test_a_blob_is_cut_from_its_own_pieces_whatever_lies_beside_it():
    """Two blobs a pixel apart, each cut at a concave crease between two colours; the left one
    also has a sliver beyond a second crease at its right edge, too small to be an object. The
    sliver goes to the nearest piece of its own blob. It went to the other blob's nearer piece
    when one distance transform served all blobs, and a cut then ran inside the left blob."""
    from robot_classify.runtime.patches import _split_at_creases
    K = Intrinsics(600.0, 600.0, 100.0, 60.0)
    x = np.arange(200, dtype=np.float32)
    valleys = np.min([np.abs(x - c) for c in (50, 96, 140)], axis=0)
    z = np.full((120, 200), 0.8, np.float32) - 0.002 * valleys[None, :]  # farthest at each crease
    color = np.zeros((120, 200, 3), np.uint8)
    color[:, :50], color[:, 50:101] = (200, 30, 30), (30, 30, 200)
    color[:, 101:140], color[:, 140:] = (30, 200, 30), (220, 220, 30)
    left = np.zeros((120, 200), bool)
    left[20:100, 20:100] = True
    right = np.zeros_like(left)
    right[20:100, 101:180] = True
    params = SegmentationParams(scale=1, min_area=50)
    both = _split_at_creases(left | right, z, K, color, params)
    alone = _split_at_creases(left, z, K, color, params)
    inner = np.s_[21:99, 21:99]  # the left blob less its outline
    np.testing.assert_array_equal(both[inner], alone[inner])
    assert not (~both[inner])[:, 40:].any()  # only the red/blue crease is cut in it
    assert (~both[inner])[:, 27:31].all(axis=0).any()  # and that one is
