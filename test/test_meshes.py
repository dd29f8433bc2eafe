"""Rendered packaging shows its design the way the product carries it (sim.meshes).

pybullet's own box and cylinder shapes mapped a design's top half onto one side of a can (a
soup can rendered red on the left, white on the right); these render a mesh and look."""
import numpy as np
import pytest

from robot_classify.sim.meshes import DESIGN, STRIP, atlas, bowl_obj, box_obj, cylinder_obj, oval_obj, wraps
from robot_classify.sim.object_catalog import CATALOG

pb = pytest.importorskip("pybullet")

RED, WHITE, LID = (30, 30, 200), (245, 245, 245), (40, 200, 40)  # BGR
MUSTARD = CATALOG["mustard_bottle"].parts[0]
BOTTLE = oval_obj(0.0475, 0.029, [(s, (z - 0.5) * 0.16) for s, z in MUSTARD.profile])


def parse(obj: str) -> dict[str, list]:
    out: dict[str, list] = {"v": [], "vt": [], "vn": [], "f": []}
    for line in obj.splitlines():
        key, *rest = line.split()
        out[key].append(rest)
    return out


@pytest.mark.parametrize("obj", [cylinder_obj(0.033, 0.1), box_obj((0.1, 0.05, 0.2)), bowl_obj(0.08, 0.05), BOTTLE])
def test_the_meshes_are_closed_and_their_coordinates_stay_on_the_atlas(obj):
    m = parse(obj)
    uv = np.array(m["vt"], float)
    assert uv.min() >= 0 and uv.max() <= 1
    for face in m["f"]:
        for corner in face:
            v, t, n = (int(i) for i in corner.split("/"))
            assert 1 <= v <= len(m["v"]) and 1 <= t <= len(uv) and 1 <= n <= len(m["vn"])
    # every edge is shared by exactly two triangles: no holes for the table to show through
    # (the cylinder's seam column is doubled, so positions are compared, not indices)
    edges: dict = {}
    points = [tuple(np.round(np.array(p, float), 6)) for p in m["v"]]
    for face in m["f"]:
        ids = [points[int(c.split("/")[0]) - 1] for c in face]
        for a, b in zip(ids, ids[1:] + ids[:1]):
            edges[frozenset((a, b))] = edges.get(frozenset((a, b)), 0) + 1
    assert set(edges.values()) == {2}
    # consistently wound (each edge walked once each way) and turned the way its normal points
    directed = set()
    normals = np.array(m["vn"], float)
    for face in m["f"]:
        corners = [c.split("/") for c in face]
        ids = [points[int(c[0]) - 1] for c in corners]
        for a, b in zip(ids, ids[1:] + ids[:1]):
            assert (a, b) not in directed
            directed.add((a, b))
        a, b, c = (np.array(p) for p in ids)
        assert np.cross(b - a, c - a) @ normals[int(corners[0][2]) - 1] > 0


def test_the_atlas_keeps_the_design_over_its_plain_colours():
    design = np.zeros((DESIGN, DESIGN, 3), np.uint8)
    design[:, : DESIGN // 2] = RED
    a = atlas(design, LID, WHITE, repeats=2)
    assert a.shape == (DESIGN + STRIP, DESIGN, 3)
    assert tuple(a[DESIGN + 5, 5]) == LID and tuple(a[DESIGN + 5, -5]) == WHITE
    # repeated twice around: red, black, red, black across the columns
    assert [tuple(a[10, x]) for x in (30, 100, 160, 230)] == [RED, (0, 0, 0), RED, (0, 0, 0)]
    assert wraps(0.033, 0.10) == 2 and wraps(0.009, 0.12) == 1


def render_side(tmp_path, obj: str, height: float) -> tuple[np.ndarray, np.ndarray]:
    """The object seen level from the front under flat light: RGB and its silhouette."""
    import cv2

    design = np.empty((DESIGN, DESIGN, 3), np.uint8)
    design[: DESIGN // 2], design[DESIGN // 2:] = RED, WHITE  # a soup can: red over white
    cv2.imwrite(str(tmp_path / "tex.png"), atlas(design, LID, LID))
    (tmp_path / "m.obj").write_text(obj)
    c = pb.connect(pb.DIRECT)
    try:
        vs = pb.createVisualShape(pb.GEOM_MESH, fileName=str(tmp_path / "m.obj"), physicsClientId=c)
        body = pb.createMultiBody(0, -1, vs, basePosition=[0, 0, 0], physicsClientId=c)
        pb.changeVisualShape(body, -1, textureUniqueId=pb.loadTexture(str(tmp_path / "tex.png"), physicsClientId=c),
                             rgbaColor=[1, 1, 1, 1], physicsClientId=c)
        view = pb.computeViewMatrix([0, -4 * height, 0], [0, 0, 0], [0, 0, 1], physicsClientId=c)
        proj = pb.computeProjectionMatrixFOV(30, 1.0, 0.01, 10, physicsClientId=c)
        _, _, rgba, _, seg = pb.getCameraImage(160, 160, view, proj, renderer=pb.ER_TINY_RENDERER, shadow=0,
                                               lightAmbientCoeff=1.0, lightDiffuseCoeff=0.0,
                                               lightSpecularCoeff=0.0, physicsClientId=c)
    finally:
        pb.disconnect(c)
    return np.reshape(rgba, (160, 160, 4))[..., :3].astype(int), np.reshape(seg, (160, 160)) == body


@pytest.mark.parametrize("obj,height", [(cylinder_obj(0.033, 0.1), 0.1), (box_obj((0.1, 0.05, 0.2)), 0.2),
                                        (BOTTLE, 0.16)])
def test_a_design_shows_right_way_up_on_the_side(tmp_path, obj, height):
    rgb, inside = render_side(tmp_path, obj, height)
    rows = np.flatnonzero(inside.any(1))
    top, bottom = rows[0] + 3, rows[-1] - 3  # a few rows in from the silhouette's edge
    cols = np.flatnonzero(inside[(top + bottom) // 2])
    centre = cols[len(cols) // 2]
    red, white = np.array(RED[::-1]), np.array(WHITE[::-1])  # RGB
    assert np.abs(rgb[top, centre] - red).max() < 40, rgb[top, centre]
    assert np.abs(rgb[bottom, centre] - white).max() < 40, rgb[bottom, centre]
    # and across the side at mid-height of each half: one colour, not a left/right split
    for y, want in ((top + (bottom - top) // 4, red), (bottom - (bottom - top) // 4, white)):
        across = rgb[y, np.flatnonzero(inside[y])[2:-2]]  # (a bottle is narrower at its shoulders)
        assert np.abs(across - want).max() < 60, (y, across.min(0), across.max(0))


def test_an_oval_profile_needs_two_points_rising():
    with pytest.raises(ValueError, match="at least two"):
        oval_obj(0.05, 0.03, [(1.0, 0.0)])
    with pytest.raises(ValueError, match="z rising"):
        oval_obj(0.05, 0.03, [(1.0, 0.0), (0.5, 0.0)])


def test_the_mustard_bottle_narrows_to_its_cap(tmp_path):
    """A real French's bottle is no box: seen side on, its shoulders are narrower than its body."""
    _, inside = render_side(tmp_path, BOTTLE, 0.16)
    rows = np.flatnonzero(inside.any(1))
    width = inside.sum(1)
    body, neck = width[rows[0] + (rows[-1] - rows[0]) * 2 // 3], width[rows[0] + 2]
    assert neck < 0.5 * body, (neck, body)
