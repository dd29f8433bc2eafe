"""The surface objects stand on, and which segments stand on it.

A real camera over a table sees more than the table: the floor around it, walls, chairs,
carpet, the far end of the room. The dominant plane RANSAC finds is often not the table (a
small table in a carpeted room: the floor is larger), and everything that rises above the
dominant plane is then an "object" (the whole table, chair legs, a patch of wall). Measured
from outside on real frames, most wrong class names came from such segments.

Two rules a tabletop perception stack needs, both metric and cheap:
  * the support is the *highest* large plane parallel to the dominant one (a table above the
    floor; a shelf board above the table only when it is as large as a table,
    `support_area`), found by a 1-D search over heights along the dominant normal; where no
    plane above the dominant one is that large, a small surface at furniture height that
    holds something and stands before the floor's middle (a stool, a chair's tablet);
  * a segment is an object only if its base (its lowest pixels) lies inside the support's
    outline in the image: the convex hull of the support's own pixels. Things beyond the
    table's edge (the floor behind it, a wall, a chair) are outside, however they rise above
    the plane's extension.
"""
from __future__ import annotations

import cv2
import numpy as np

from .blobs import blobs_touching
from .camera import Intrinsics

PARALLEL_COS = float(np.cos(np.deg2rad(12.0)))  # a table's normal within 12 degrees of the floor's
RISE = 0.05  # metres: a support above the current one starts at least this high
FURNITURE_RISE = 0.3  # metres above the floor: a stool, a chair's tablet, a side table...
SMALL_SUPPORT_AREA = 0.02  # ...that shows at least this many square metres, when no larger support does,
MIN_SPREAD = 0.02  # ...extends this far (RMS, metres) across as well as along: not a strip of a wall...
# ...within SMALL_BINS height bins (plane_threshold each: 3.2 cm by default, as a chair's
# tablet tilts a few degrees against the floor and spans 3 cm of height over its 30 cm)...
SMALL_BINS = 4
HELD = (0.02, 0.3, 10)  # ...and holds something: this many samples between these heights above it


def sample_area(points: np.ndarray, K: Intrinsics, step: int, normal: np.ndarray) -> np.ndarray:
    """Square metres of surface each sampled point stands for on a plane with `normal`: a grid
    sample every `step` pixels covers (step z / fx) x (step z / fy) seen head-on, more on a
    slanted surface (divided by the cosine between the normal and the viewing ray)."""
    z = points[:, 2].astype(np.float64)
    rays = points / np.maximum(np.linalg.norm(points, axis=1, keepdims=True), 1e-9)
    cos = np.maximum(np.abs(rays @ normal), 0.2)  # grazing views are unreliable; cap the weight at 5x
    return (step * z / K.fx) * (step * z / K.fy) / cos


def highest_support(points: np.ndarray, plane: np.ndarray, K: Intrinsics, step: int, threshold: float,
                    min_area: float) -> np.ndarray:
    """The highest plane parallel to `plane` (within PARALLEL_COS) holding at least `min_area`
    square metres of the sampled points, or `plane` itself.

    Parallel planes differ only by their offset, so instead of another RANSAC the heights of the
    points above the current plane are binned along its normal (bins of `threshold`), and the
    highest bin pair holding `min_area` becomes the candidate; a least-squares fit on its points
    then allows the small tilt a real table has against a real floor.

    Where nothing above the dominant plane holds `min_area`, a smaller surface at furniture
    height is the support (`_small_support`): a chair's writing tablet in a carpeted room, most
    of it hidden by the cans standing on it, is a few hundredths of a square metre, and the
    floor took its place (the products on it were never found).
    """
    plane = np.asarray(plane, np.float64)
    for level in range(3):  # floor -> table -> (rarely) a large board above it
        n, d = plane[:3], plane[3]
        h = points @ n + d
        above = h > RISE
        if above.sum() < 50:
            break
        area = sample_area(points[above], K, step, n)
        edges = np.arange(RISE, float(h[above].max()) + 2 * threshold, threshold)
        if len(edges) < 2:
            break
        hist, _ = np.histogram(h[above], edges, weights=area)
        pairs = hist[:-1] + hist[1:] if len(hist) > 1 else hist
        big = np.flatnonzero(pairs >= min_area)
        ground = points[np.abs(h) < threshold]  # the current plane's own points, and how far they lie
        middle = _ground_distance(ground, n) if len(ground) >= 20 else None
        found = _nearer_plane(points, h, above, edges, big, n, threshold, middle)
        if found is None and level == 0:
            # ... and holds more than the plane found: where that is the robot's table, not the
            # floor, a desk beyond it is at furniture height above it too (M2T2: it held 59
            # samples, the table 393; a chair's tablet 250 and 476, the floor 30 and 5).
            small = _small_support(points, plane, h, edges, hist, threshold, middle)
            if small is None or small[1] <= _held(points, plane, ground.astype(np.float64)):
                break
            plane = small[0]
            continue
        if found is None:
            break
        fit, sel, hi = found
        if level == 0:  # chair seats around a chair's tablet: large, low, holding nothing
            small = _small_support(points, plane, h, edges, hist, threshold, middle, above=hi)
            if small is not None and small[1] > _held(points, fit, sel):
                plane = small[0]
                continue
        plane = fit
    return plane


REFINE_ROUNDS = 5  # least-squares refits on the points within threshold (`refine_plane`); 2-3 settle it


def refine_plane(points: np.ndarray, plane: np.ndarray, threshold: float, rounds: int = REFINE_ROUNDS) -> np.ndarray:
    """`plane` refitted by least squares on the points within `threshold` of it, again on those
    within threshold of the refit, until the set stops changing.

    One refit leaves the plane where the first guess put it: a RANSAC hypothesis through three
    noisy points, or a slab of heights cut along a plane a degree off, keeps the inliers of that
    guess, and the refit through them keeps its tilt. On 10 of 34 real frames one refit left the
    support 0.25-3.3 degrees and up to 18 mm apart between RANSAC seeds, against the 12 mm an
    object must rise; refitting to a fixed point ends in the same plane from any guess near it.
    Oriented as `plane` is."""
    plane = np.asarray(plane, np.float64)
    rows = np.ascontiguousarray(points.T, np.float64)  # (3, N): numpy reduces (N, 3) along N slowly
    inliers = None
    for _ in range(rounds):
        near = np.abs(plane[:3] @ rows + plane[3]) < threshold
        count = int(near.sum())
        if count < 20 or (inliers is not None and np.array_equal(near, inliers)):
            break
        inliers = near
        w = near.astype(np.float64)  # the inliers' moments as products (a gather and a mean cost 4x)
        centre = rows @ w / count
        scatter = (rows * w) @ rows.T - count * np.outer(centre, centre)
        normal = np.linalg.eigh(scatter)[1][:, 0]  # the scatter's least axis: the least-squares normal
        if normal @ plane[:3] < 0:
            normal = -normal
        plane = np.append(normal, -normal @ centre)
    return plane


def _nearer_plane(points: np.ndarray, h: np.ndarray, above: np.ndarray, edges: np.ndarray, big: np.ndarray,
                  n: np.ndarray, threshold: float, middle: float | None
                  ) -> tuple[np.ndarray, np.ndarray, float] | None:
    """The highest of the `big` bin pairs (over `edges` of the heights `h` above the current
    plane, `above` those over RISE) whose points fit a plane parallel to unit normal `n` and lie
    nearer the camera than `middle`, the current plane's own points' distance measured along it
    (`_ground_distance`; None: too few of them to say, and no bound), as `_small_support` asks
    of a small one: its plane (refined on all `points`), its points and the pair's upper edge;
    None where no pair does.

    A table stands on the floor around it and the camera looks down at it, so it lies nearer
    than the floor's middle; a desk or a shelf beyond the robot's table lies farther than the
    table's. On a real robot table (M2T2) a desk behind it shows 0.1 m^2 at 43 cm above the
    table and took the support's place at some RANSAC draws, dropping all 7 objects."""
    middle = np.inf if middle is None else middle
    pts, heights = points[above], h[above]
    for top in big[::-1]:
        hi = float(edges[min(top + 2, len(edges) - 1)])
        sel = pts[(heights >= edges[top]) & (heights < hi)].astype(np.float64)
        fit = _parallel_plane(sel, n) if len(sel) >= 20 else None
        if fit is not None and _ground_distance(sel, n) < middle:
            return refine_plane(points, fit[0], threshold), sel, hi
    return None


def _parallel_plane(sel: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The least-squares plane through `sel`, oriented as fit_plane orients planes (the camera
    on the positive side), and the fit's singular values (how far the points spread along its
    axes); None where it is not parallel to the unit normal `n` within PARALLEL_COS."""
    centre = sel.mean(0)
    _, spread, vt = np.linalg.svd(sel - centre, full_matrices=False)
    normal = vt[-1] if vt[-1] @ n >= 0 else -vt[-1]
    if normal @ n < PARALLEL_COS:
        return None
    candidate = np.append(normal, -normal @ centre)
    return (-candidate if candidate[3] < 0 else candidate), spread


def _small_support(points: np.ndarray, plane: np.ndarray, h: np.ndarray, edges: np.ndarray, hist: np.ndarray,
                   threshold: float, middle: float | None, above: float = FURNITURE_RISE
                   ) -> tuple[np.ndarray, int] | None:
    """The highest surface at furniture height (FURNITURE_RISE above `plane`, the dominant one,
    whose heights `h` were binned into `hist` over `edges`; `middle`: its own points' distance,
    `_ground_distance`, None where too few lie on it) that shows SMALL_SUPPORT_AREA within
    SMALL_BINS bins and passes every test below, else None. Each test stands for a way a small
    patch of the sampled points at that height is no work surface:
      * it must lie nearer the camera than the dominant plane's middle, measured along that
        plane, as a surface the camera looks down at does: a shelf or a desk beyond the table
        lies farther;
      * it must be flat and parallel to the dominant plane, and spread both ways (MIN_SPREAD):
        a band of a wall is a line, and any plane through a line fits it;
      * something must stand on it (HELD): a work surface holds the things the camera looks
        at, where the top of a tall box on a table holds nothing.
    A candidate that fails gives way to the next lower one. Searched only from `above` m up;
    returned with how much it holds (`_held`)."""
    n = plane[:3]
    if middle is None:
        return None
    window = np.convolve(hist, np.ones(SMALL_BINS), "valid") if len(hist) >= SMALL_BINS else hist
    for top in np.flatnonzero((window >= SMALL_SUPPORT_AREA) & (edges[:len(window)] >= max(above, FURNITURE_RISE)))[::-1]:
        sel = points[(h >= edges[top]) & (h < edges[min(top + SMALL_BINS, len(edges) - 1)])].astype(np.float64)
        if len(sel) < 20 or _ground_distance(sel, n) >= middle:
            continue
        fit = _parallel_plane(sel, n)
        if fit is not None:  # once more on the points near the first fit: a tilted tablet's own
            near = np.abs(points @ fit[0][:3] + fit[0][3]) < threshold
            sel = points[near].astype(np.float64) if near.sum() >= 20 else sel
            fit = _parallel_plane(sel, n)
        if fit is None or fit[1][1] / np.sqrt(len(sel)) < MIN_SPREAD:
            continue
        held = _held(points, fit[0], sel)
        if held >= HELD[2]:
            return fit[0], held
    return None


HOLD_CELL = 0.03  # metres: the grid a surface's pieces are found on


def _held(points: np.ndarray, plane: np.ndarray, surface: np.ndarray) -> int:
    """How many of the points rise HELD[0]-HELD[1] m above `plane` over the footprint of
    `surface`: the convex hulls, on the plane, of its pieces (its points on a HOLD_CELL grid,
    gaps of one cell closed). Piece by piece, as two chair seats at one height are two
    surfaces: their common hull spans the tablet between them and everything on it."""
    low, high, _ = HELD
    h = points @ plane[:3] + plane[3]
    up = points[(h > low) & (h < high)]
    if not len(up):
        return 0
    basis = plane_basis(plane).astype(np.float64)
    flat = surface @ basis[:, 1:]
    origin = flat.min(0) - HOLD_CELL
    cells = np.floor((flat - origin) / HOLD_CELL).astype(np.int32)
    grid = np.zeros(tuple(cells.max(0) + 2), np.uint8)
    grid[cells[:, 0], cells[:, 1]] = 1
    grid = cv2.morphologyEx(grid, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(grid, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    footprint = np.zeros_like(grid)
    for c in contours:  # (x, y) = (column, row) = (second, first plane axis)
        cv2.fillConvexPoly(footprint, cv2.convexHull(c), 1)
    at = np.floor((up @ basis[:, 1:] - origin) / HOLD_CELL).astype(np.int64)
    inside = (at >= 0).all(1) & (at[:, 0] < grid.shape[0]) & (at[:, 1] < grid.shape[1])
    return int(footprint[at[inside, 0], at[inside, 1]].sum())


def _ground_distance(points: np.ndarray, normal: np.ndarray) -> float:
    """The points' median distance from the camera along a plane with unit `normal`: how far
    away they stand, whatever their height."""
    return float(np.median(np.linalg.norm(points - np.outer(points @ normal, normal), axis=1)))


RIM = 0.04  # of the image diagonal: how far outside the outline a base may lie when it touches the plane
BASE_HEIGHT = 0.03  # metres: a base this close to the plane touches it...
# ...measured at its lowest pixels (this share of the segment, and never fewer than its third
# lowest pixel: a stray one or two aside). The lowest tenth of its pixels, which decides where it
# stands, reached 3.8 cm up a 20 cm wipes canister on a real small table, seen from above: it
# floated and was dropped as off the support. (With TOUCH_FRACTION at stands_on's base_fraction,
# 0.1, the rule is 0.9.6's for pixel counts above 20.)
TOUCH_FRACTION = 0.02


def support_outline(on_plane: np.ndarray, min_fraction: float = 0.02, grid: int = 4, gap: int = 3
                    ) -> tuple[np.ndarray, np.ndarray] | None:
    """The image region of the support, and the same widened by RIM (where the convex hull of
    the visible support falls short of the real edge: objects at the far edge hide the table
    behind them).

    The region is the convex hull of the support's largest piece and of the large pieces
    within `gap` grid cells of it (objects standing on a table cut its pixels into pieces; the
    hull closes over them). Another table at the same height across the room is farther away
    and stays out. None when the support is too small to tell an inside from an outside.
    Everything is found on every `grid`-th pixel (an outline needs no finer grain): ~1 ms at
    VGA, where the hull of every pixel and a full-size dilation took ~100."""
    coarse = np.ascontiguousarray(on_plane[::grid, ::grid])
    n, labels, stats, _ = cv2.connectedComponentsWithStats(coarse.view(np.uint8), connectivity=8)
    if n <= 1:
        return None
    areas = stats[:, cv2.CC_STAT_AREA].copy()
    areas[0] = 0
    largest = int(np.argmax(areas))
    if areas[largest] < min_fraction * coarse.size:
        return None
    near = cv2.dilate((labels == largest).view(np.uint8), np.ones((2 * gap + 1, 2 * gap + 1), np.uint8))
    touching = np.unique(labels[near.view(bool)])
    lut = np.zeros(n, np.uint8)
    lut[touching[areas[touching] >= 0.2 * areas[largest]]] = 1
    contours, _ = cv2.findContours(lut[labels], cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.convexHull(np.concatenate(contours))
    small = np.zeros(coarse.shape, np.uint8)
    cv2.fillConvexPoly(small, hull, 1)
    r = max(1, int(round(RIM * np.hypot(*coarse.shape))))
    small = cv2.dilate(small, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    H, W = on_plane.shape
    widened = cv2.resize(small, (coarse.shape[1] * grid, coarse.shape[0] * grid),
                         interpolation=cv2.INTER_NEAREST)[:H, :W]
    outline = np.zeros(on_plane.shape, np.uint8)
    cv2.fillConvexPoly(outline, (hull * grid + grid // 2).astype(np.int32), 1)
    return outline.view(bool), np.ascontiguousarray(widened).view(bool)


def stands_on(component: np.ndarray, box: tuple[int, int, int, int], height: np.ndarray,
              outline: np.ndarray, widened: np.ndarray, base_fraction: float = 0.1, inside: float = 0.5) -> bool:
    """Whether a segment's base (its lowest `base_fraction` of pixels by height above the plane)
    lies on the support: at least `inside` of it within the outline, or within the `widened`
    outline (`support_outline`) while touching the plane (its lowest TOUCH_FRACTION within
    BASE_HEIGHT) or with its base hidden behind a nearer object (`base_hidden`). A chair back
    or a wall behind the table's far edge meets the outline there too, but its lowest pixels
    float above the plane, over the table or the floor. A segment cut by the image's edge may
    have its base out of view, and the outline there is only the hull of what the camera sees
    of the table: the widened outline suffices."""
    x, y, w, h = box
    heights = height[y:y + h, x:x + w]
    hh = heights[component]
    if not len(hh):
        return False
    k = int(base_fraction * (len(hh) - 1))
    t = max(int(TOUCH_FRACTION * (len(hh) - 1)), min(len(hh) - 1, 2))
    lowest, cut = np.partition(hh, (t, k))[[t, k]]  # quantiles, lower sample (no interpolation)
    base = component & (heights <= cut)
    if outline[y:y + h, x:x + w][base].mean() >= inside:
        return True
    at_edge = x == 0 or y == 0 or x + w == height.shape[1] or y + h == height.shape[0]
    if not widened[y:y + h, x:x + w][base].mean() >= inside:
        return False
    return bool(lowest <= BASE_HEIGHT or at_edge or base_hidden(component, box, height))


HIDDEN_GAP = 2  # grid pixels below a segment's lowest pixel in a column: where what hides its base is read
HIDDEN_SHARE = 0.5  # of its columns


def base_hidden(component: np.ndarray, box: tuple[int, int, int, int], height: np.ndarray) -> bool:
    """Whether what lies just below a segment in the image rises above the support in most of its
    columns: its base is hidden behind a nearer object, not floating over the table. On a real
    small table (UOC frame 6) a toy robot stands behind a box at the table's far edge: its lowest
    visible pixels are 4 cm up and the table behind the box is out of view, so neither the hull
    nor the touch rule holds it. A wall or a chair back above the far edge has the table or the
    floor below it."""
    x, y, w, h = box
    cols = np.flatnonzero(component.any(axis=0))
    rows = y + h - np.argmax(component[::-1, cols], axis=0) - 1 + HIDDEN_GAP  # below each column's lowest
    in_view = rows < height.shape[0]  # NaN heights (no depth) count as not rising
    if not in_view.any():
        return False
    return bool((height[rows[in_view], x + cols[in_view]] > BASE_HEIGHT).mean() >= HIDDEN_SHARE)


def touches_support(component: np.ndarray, box: tuple[int, int, int, int], outline: np.ndarray,
                    widened: np.ndarray) -> bool:
    """Whether any pixel of a segment lies within the support's outline or its widened outline
    (`support_outline`): where none does, neither it nor any piece cut from it `stands_on` the
    support."""
    x, y, w, h = box
    return bool((outline[y:y + h, x:x + w] | widened[y:y + h, x:x + w])[component].any())


def near_support(mask: np.ndarray, outline: np.ndarray, widened: np.ndarray) -> tuple[np.ndarray, int]:
    """The mask less its 8-connected blobs with no pixel in the support's outline or widened
    outline (`touches_support` on each), and how many went. Dropped before the crease cut: the
    floor, walls and shelves around a table are most of a frame's mask (m2t2: 10-20 blobs), and
    no piece cut from such a blob could stand on the support."""
    return blobs_touching(mask, outline | widened)


TOP_PERCENTILE = 98.0  # the top of an object: a few flying pixels above it are noise
POSE_POINTS = 1024  # points enough for a 2nd or 98th percentile to a millimetre; more cost time only


def plane_basis(plane: np.ndarray) -> np.ndarray:
    """(3, 3) float32 columns: the plane's unit normal and two unit axes within the plane, so that
    `points @ basis` gives each point's height (less the plane's offset) and its place on the plane."""
    n = np.asarray(plane[:3], np.float64) / np.linalg.norm(plane[:3])
    e = np.eye(3)[int(np.argmin(np.abs(n)))]
    u = e - (e @ n) * n
    u /= np.linalg.norm(u)
    v = np.array([n[1] * u[2] - n[2] * u[1], n[2] * u[0] - n[0] * u[2], n[0] * u[1] - n[1] * u[0]])
    return np.stack([n, u, v], 1).astype(np.float32)


def _plane_coords(points: np.ndarray, plane: np.ndarray, basis: np.ndarray | None) -> np.ndarray:
    """At most POSE_POINTS of an object's points, an even stride over it (rows in scan order),
    as (height less the plane's offset, place on the plane): what `pose_geometry` and
    `section_shape` measure."""
    points = points[::-(-len(points) // POSE_POINTS)]
    return points @ (plane_basis(plane) if basis is None else basis).astype(points.dtype, copy=False)


SECTION_BAND = (0.3, 0.7)  # the side's cross-section: points between these fractions of the top's height
SECTION_POINTS = 40  # fewer in the band: no section (a flat object, a sliver of a side)
SECTION_SPREAD = 0.005  # metres (RMS along the section's long axis): narrower is no side to judge
SECTION_SPLITS = 15  # where the pair of lines may meet, along the section's long axis


def _line_rms(n, sx, sy, sxx, syy, sxy):
    """RMS distance to the best line of points given by their sums (the 2x2 covariance's
    smaller eigenvalue); arrays of candidates at once."""
    mx, my = sx / n, sy / n
    a, b, c = sxx / n - mx * mx, syy / n - my * my, sxy / n - mx * my
    small = 0.5 * (a + b) - np.sqrt(np.maximum(0.25 * (a - b) ** 2 + c * c, 0.0))
    return np.sqrt(np.maximum(small, 0.0))


def fit_circle(p: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(centre, radius, rms distance from it), metres: the circle through (n, 2) points on the
    plane by algebraic least squares (x² + y² = 2ax + 2by + c)."""
    A = np.column_stack([2 * p, np.ones(len(p))])
    (a, b, c), *_ = np.linalg.lstsq(A, (p * p).sum(1), rcond=None)
    radius = float(np.sqrt(max(c + a * a + b * b, 0.0)))
    return np.array([a, b]), radius, float(np.sqrt(np.mean((np.hypot(p[:, 0] - a, p[:, 1] - b) - radius) ** 2)))


def section_shape(points: np.ndarray, plane: np.ndarray, top: float, basis: np.ndarray | None = None
                  ) -> tuple[float, float, float] | None:
    """(radius, circle_rms, lines_rms), metres: the object's side at mid-height (the points
    between SECTION_BAND of its `top` above the support, on the plane) against the circle that
    fits it best and the best pair of straight lines (one line, or two meeting at a corner).
    A standing can's side is an arc of its own radius; a box shows one or two flat faces. A
    32x32 crop cannot tell a white tin from a sugar box's end, or a SPAM can from a soup can;
    their sides can (`object_sizes.shape_fits`). None without enough points in the band."""
    if top <= 0 or len(points) < SECTION_POINTS:
        return None
    coords = _plane_coords(points, plane, basis).astype(np.float64)
    height = coords[:, 0] + plane[3]
    p = coords[(height > SECTION_BAND[0] * top) & (height < SECTION_BAND[1] * top), 1:]
    n = len(p)
    if n < SECTION_POINTS:
        return None
    p = p - p.mean(0)
    _, spread, vt = np.linalg.svd(p, full_matrices=False)
    if spread[0] / np.sqrt(n) < SECTION_SPREAD:
        return None  # a point or a thin column: no side to judge
    _, radius, circle_rms = fit_circle(p)
    # two lines: the points in order along the section's long axis, split where the total fits best
    q = p[np.argsort(p @ vt[0])]
    x, y = q[:, 0], q[:, 1]
    sums = np.cumsum(np.column_stack([np.ones(n), x, y, x * x, y * y, x * y]), 0)
    total = sums[-1]
    ks = np.unique(np.linspace(0.15 * n, 0.85 * n, SECTION_SPLITS).astype(int))
    ks = ks[(ks >= 3) & (ks <= n - 3)]
    one = float(spread[1] / np.sqrt(n))  # one line: the section's spread across its long axis
    if len(ks):
        left, right = sums[ks - 1].T, (total - sums[ks - 1]).T
        both = np.sqrt((_line_rms(*left) ** 2 * left[0] + _line_rms(*right) ** 2 * right[0]) / n)
        one = min(one, float(both.min()))
    return radius, circle_rms, one


def pose_geometry(points: np.ndarray, plane: np.ndarray, basis: np.ndarray | None = None
                  ) -> tuple[float, tuple[float, float]] | None:
    """(top, (minor, major)): how high an object's visible surface rises above the support, and
    its footprint on the support (the sides of the smallest rectangle around the points projected
    onto the plane, pulled in to their 2nd and 98th percentiles), metres. A product resting on a table shows one of its stable
    poses: its top is one of its three sizes above the plane and its footprint holds the other
    two (`object_sizes`). Unlike the camera-axis extent, neither depends on where the camera
    looks from. `plane`'s normal is a unit vector (`fit_plane`); `basis`: `plane_basis(plane)`,
    computed once per frame by the caller of many objects. None with fewer than 3 points."""
    if len(points) < 3:
        return None
    coords = _plane_coords(points, plane, basis)
    n = len(coords)
    k = int(TOP_PERCENTILE / 100 * (n - 1))
    top = float(np.partition(coords[:, 0], k)[k] + plane[3])
    # the footprint's principal axes: the angle that diagonalises its 2x2 covariance (from the
    # Gram matrix and the sums: numpy's mean along the long axis costs more than the rest)
    flat = coords[:, 1:]
    gram = (flat.T @ flat).astype(np.float64)
    mean = (flat.T @ np.ones(n, flat.dtype)).astype(np.float64) / n
    cov = gram / n - np.outer(mean, mean)
    angle = 0.5 * np.arctan2(2 * cov[0, 1], cov[0, 0] - cov[1, 1])
    c, s = np.cos(angle), np.sin(angle)
    lo = int((100 - TOP_PERCENTILE) / 100 * (n - 1))
    turned = flat @ np.array([[c, -s], [s, c]], flat.dtype)
    spread = np.partition(turned, [lo, k], axis=0)
    # Principal axes are the footprint's own only when it is elongated; a square's point in any
    # direction, and its 2nd-98th percentile spread along a diagonal is ~1.15x its side. The
    # smallest rectangle around the points, pulled in to those percentiles (stray pixels on the
    # table), has the footprint's own sides whatever its shape (cv2.minAreaRect).
    _, sides, _ = cv2.minAreaRect(np.clip(turned, spread[lo], spread[k]).astype(np.float32, copy=False))
    minor, major = sorted(float(v) for v in sides)
    return top, (minor, major)
