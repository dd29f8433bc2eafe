"""The 10 PROPS / YCB object instances as renderable geometry with procedural packaging.

Dimensions are the real YCB objects' (metres). Textures are drawn with OpenCV: base colour,
bands and printed words, the cues that tell real packaging apart.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from .meshes import atlas, wraps


@dataclass(frozen=True)
class Part:
    shape: str  # "box" | "cylinder" | "bottle" | "mesh"
    size: tuple[float, ...]  # box, bottle: (x, y, z) full extents; cylinder: (radius, height); mesh: (scale,)
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)  # from the object's base centre
    texture: str | None = None  # key into the texture designs
    rgba: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    # bottle: its oval section's scale at fractions of its height, from the bottom up
    profile: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class ObjectSpec:
    name: str
    parts: tuple[Part, ...]
    can_lie_down: bool = False  # boxes are often placed on their broad face
    lies_down: bool = False  # the marker always lies on the table
    footprint: float = field(default=0.05)  # radius of the base, for placement without overlap


_MUSTARD_PROFILE = ((0.88, 0.0), (0.98, 0.04), (1.0, 0.1), (1.0, 0.58), (0.93, 0.68), (0.72, 0.82), (0.48, 0.93),
                    (0.34, 1.0))

CATALOG: dict[str, ObjectSpec] = {
    "master_chef_can": ObjectSpec("master_chef_can", (Part("cylinder", (0.051, 0.14), texture="master_chef_can"),),
                                  footprint=0.052),
    "cracker_box": ObjectSpec("cracker_box", (Part("box", (0.16, 0.06, 0.21), texture="cracker_box"),),
                              can_lie_down=True, footprint=0.09),
    "sugar_box": ObjectSpec("sugar_box", (Part("box", (0.09, 0.04, 0.175), texture="sugar_box"),),
                            can_lie_down=True, footprint=0.06),
    "tomato_soup_can": ObjectSpec("tomato_soup_can", (Part("cylinder", (0.033, 0.10), texture="tomato_soup_can"),),
                                  footprint=0.035),
    # French's squeeze bottle: oval, rounded at the foot, narrowing from about 60% of its height
    # to a neck under a centred cap (generator 5; 4 drew a box with the cap to one side)
    "mustard_bottle": ObjectSpec("mustard_bottle", (
        Part("bottle", (0.095, 0.058, 0.16), texture="mustard_bottle", profile=_MUSTARD_PROFILE),
        Part("cylinder", (0.016, 0.035), offset=(0.0, 0.0, 0.16), rgba=(0.9, 0.75, 0.05, 1.0)),
    ), footprint=0.06),
    "tuna_fish_can": ObjectSpec("tuna_fish_can", (Part("cylinder", (0.043, 0.033), texture="tuna_fish_can"),),
                                footprint=0.045),
    "gelatin_box": ObjectSpec("gelatin_box", (Part("box", (0.089, 0.028, 0.073), texture="gelatin_box"),),
                              can_lie_down=True, footprint=0.05),
    "potted_meat_can": ObjectSpec("potted_meat_can", (Part("box", (0.10, 0.05, 0.083), texture="potted_meat_can"),),
                                  footprint=0.06),
    "mug": ObjectSpec("mug", (Part("mesh", (1.0,), rgba=(0.85, 0.12, 0.1, 1.0)),), footprint=0.06),
    "large_marker": ObjectSpec("large_marker", (Part("cylinder", (0.009, 0.12), texture="large_marker"),),
                               lies_down=True, footprint=0.065),
}


MUG_HEIGHT = 0.1  # pybullet_data's mug.obj at scale 1


def upright_height(part: Part) -> float:
    """The part's height standing on its base (metres)."""
    return part.size[1] if part.shape == "cylinder" else part.size[2] if part.shape in ("box", "bottle") \
        else MUG_HEIGHT * part.size[0]


def lying_height(part: Part) -> float:
    """Its height lying on its side: a cylinder's diameter, a box's middle side (rolled about x)."""
    return 2 * part.size[0] if part.shape == "cylinder" else part.size[1] if part.shape in ("box", "bottle") \
        else upright_height(part)


def resting_heights(catalog: dict[str, ObjectSpec] | None = None) -> dict[str, tuple[float, ...]]:
    """Per class, the heights at which a model trained on the renders names it
    (`ClassifierModel.resting`): as the renders rest it (a can only standing, the marker only
    lying), except that a box the renders lay down may rest on any of its three faces. The renders
    show a box standing or on its broad face; a real one also lies on its narrow side, and the
    classifier, which knows its broad face, still names it from there (recipe 8: three Cheez-It
    boxes on their side in unseen real frames had been called `unknown`)."""
    out = {}
    for name, spec in (CATALOG if catalog is None else catalog).items():
        main = spec.parts[0]
        up, down = upright_height(main), lying_height(main)
        if spec.lies_down:
            out[name] = (down,)
        elif spec.can_lie_down and main.shape == "box":
            out[name] = (up, down, main.size[0])
        else:
            out[name] = (up, down) if spec.can_lie_down else (up,)
    return out


class Design(NamedTuple):
    """What the packaging shows, side on (colours BGR, rows as fractions of the height)."""
    background: tuple[int, int, int]
    band: tuple[int, int, int]
    text: str
    text_colour: tuple[int, int, int]
    band_rows: tuple[float, float]
    text_row: float | None = None  # None: in a narrow band, else low on the face
    bold: bool = False  # a logo that fills the face (Cheez-It's), not a word in a band


_DESIGNS = {
    "master_chef_can": Design((140, 70, 20), (40, 160, 210), "MASTER CHEF", (255, 255, 255), (0.35, 0.65)),
    "cracker_box": Design((30, 30, 200), (40, 110, 210), "CHEEZ-IT", (20, 225, 255), (0.55, 0.85),
                          text_row=0.25, bold=True),
    # Domino: the name in navy on the white top of the face, a pale lemon below (generator 5; 4 drew
    # it white all over, with a blue band, as no Domino box is)
    "sugar_box": Design((127, 240, 229), (240, 245, 245), "Domino", (130, 50, 20), (0.0, 0.45)),
    "tomato_soup_can": Design((245, 245, 245), (30, 30, 190), "Campbell's", (250, 250, 250), (0.0, 0.5),
                              text_row=0.25),  # the white script on the red half (generator 3; 2 drew it on the white)
    "mustard_bottle": Design((20, 210, 240), (170, 100, 30), "FRENCH'S", (40, 40, 210), (0.4, 0.65)),
    "tuna_fish_can": Design((200, 120, 40), (200, 200, 200), "StarKist", (30, 30, 30), (0.6, 1.0)),
    "gelatin_box": Design((40, 40, 210), (255, 255, 255), "JELL-O", (210, 60, 40), (0.2, 0.45)),
    "potted_meat_can": Design((130, 50, 20), (20, 200, 240), "SPAM", (20, 230, 250), (0.3, 0.55)),
    "large_marker": Design((30, 30, 30), (245, 245, 245), "EXPO", (20, 20, 20), (0.3, 0.7)),
}


# Ten more objects, none of them a default class: what a robot team teaches the node live
# (`bench/teach_bench.py`). Same generator, new packaging and proportions.
_NOVEL_DESIGNS = {
    "cereal_box": Design((40, 140, 240), (200, 60, 30), "CORN FLAKES", (255, 255, 255), (0.55, 0.75)),
    "coffee_can": Design((20, 20, 20), (30, 120, 200), "KAFFEE", (60, 200, 250), (0.4, 0.6)),
    "juice_carton": Design((60, 200, 90), (30, 140, 250), "JUICE", (255, 255, 255), (0.1, 0.3)),
    "soap_bottle": Design((230, 160, 200), (255, 255, 255), "SOAP", (160, 40, 120), (0.45, 0.7)),
    "tea_box": Design((50, 90, 40), (180, 220, 230), "GREEN TEA", (30, 60, 20), (0.25, 0.45)),
    "chips_tube": Design((40, 40, 160), (60, 220, 230), "CHIPS", (240, 240, 240), (0.0, 0.25)),
    "pasta_box": Design((200, 90, 20), (250, 250, 250), "PENNE", (30, 30, 180), (0.6, 0.9)),
    "spray_can": Design((190, 190, 190), (20, 20, 230), "SPRAY", (20, 20, 20), (0.7, 0.85)),
    "yogurt_cup": Design((250, 250, 250), (200, 120, 250), "YOGURT", (120, 40, 160), (0.2, 0.55)),
    "glue_stick": Design((20, 200, 250), (150, 60, 20), "GLUE", (20, 20, 20), (0.3, 0.5)),
}
NOVEL_CATALOG: dict[str, ObjectSpec] = {
    "cereal_box": ObjectSpec("cereal_box", (Part("box", (0.19, 0.07, 0.27), texture="cereal_box"),),
                             can_lie_down=True, footprint=0.1),
    "coffee_can": ObjectSpec("coffee_can", (Part("cylinder", (0.05, 0.16), texture="coffee_can"),), footprint=0.052),
    "juice_carton": ObjectSpec("juice_carton", (Part("box", (0.07, 0.07, 0.2), texture="juice_carton"),),
                               footprint=0.05),
    "soap_bottle": ObjectSpec("soap_bottle", (
        Part("cylinder", (0.035, 0.15), texture="soap_bottle"),
        Part("cylinder", (0.012, 0.04), offset=(0.0, 0.0, 0.15), rgba=(0.95, 0.95, 0.95, 1.0)),
    ), footprint=0.04),
    "tea_box": ObjectSpec("tea_box", (Part("box", (0.12, 0.07, 0.07), texture="tea_box"),), can_lie_down=True,
                          footprint=0.07),
    "chips_tube": ObjectSpec("chips_tube", (Part("cylinder", (0.038, 0.23), texture="chips_tube"),), footprint=0.04),
    "pasta_box": ObjectSpec("pasta_box", (Part("box", (0.14, 0.05, 0.2), texture="pasta_box"),), can_lie_down=True,
                            footprint=0.08),
    "spray_can": ObjectSpec("spray_can", (Part("cylinder", (0.03, 0.19), texture="spray_can"),), footprint=0.035),
    "yogurt_cup": ObjectSpec("yogurt_cup", (Part("cylinder", (0.04, 0.08), texture="yogurt_cup"),), footprint=0.045),
    "glue_stick": ObjectSpec("glue_stick", (Part("cylinder", (0.012, 0.1), texture="glue_stick"),), lies_down=True,
                             footprint=0.055),
}


DESIGNS = _DESIGNS | _NOVEL_DESIGNS


def draw_texture(name: str, size: int = 256) -> np.ndarray:
    """Packaging for one class as a BGR image (OpenCV's order, as written to PNG)."""
    bg, band, text, text_col, (b0, b1), text_row, bold = DESIGNS[name]
    img = np.zeros((size, size, 3), np.uint8)
    img[:] = bg
    img[int(b0 * size):int(b1 * size)] = band
    scale = 2.2 * size / 256 / max(1.0, len(text) / 5)
    thickness, scale = (6, scale * 1.1) if bold else (2, scale)
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_DUPLEX, scale, thickness)
    y = int(text_row * size + th / 2) if text_row is not None else \
        int(((b0 + b1) / 2) * size + th / 2) if b1 - b0 < 0.5 else int(0.75 * size)
    cv2.putText(img, text, ((size - tw) // 2, y), cv2.FONT_HERSHEY_DUPLEX, scale, text_col, thickness, cv2.LINE_AA)
    # Small print and a stripe: the fine structure a real label has.
    cv2.putText(img, "net wt 12 oz", (10, size - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * size / 256, text_col, 1,
                cv2.LINE_AA)
    cv2.line(img, (0, int(b0 * size)), (size, int(b0 * size)), text_col, max(1, size // 64))
    return img


def table_texture(rng: np.random.Generator, size: int = 256) -> np.ndarray:
    """Wood-grain or speckled table tops in random colours."""
    base = rng.integers(60, 220, 3)
    yy = np.arange(size)[:, None]
    grain = np.sin(yy / rng.uniform(3, 12) + rng.uniform(0, 6) * np.sin(np.arange(size)[None, :] / 40.0))
    noise = rng.normal(0, 1, (size, size))
    tex = base[None, None, :] + (grain * rng.uniform(5, 25) + noise * rng.uniform(2, 10))[:, :, None]
    return np.clip(tex, 0, 255).astype(np.uint8)


# Lids and can ends (BGR): metal, but Master Chef's plastic lid is a translucent white-blue (generator
# 4; 3 drew it navy like the can, where the real can's lid reads about RGB 180, 230, 255 in the
# PoseCNN frame), the marker's cap and the coffee can's lid black.
_LIDS = {"master_chef_can": (250, 228, 180), "large_marker": (30, 30, 30), "coffee_can": (25, 25, 25),
         "chips_tube": (40, 40, 160), "glue_stick": (20, 200, 250)}
# box tops other than the background: SPAM's gold lid, the Domino box's white
_TOPS = {"potted_meat_can": (130, 185, 200), "sugar_box": (240, 245, 245)}
METAL = (185, 185, 190)


def textured_part(name: str) -> Part:
    """The part that wears texture `name` (each design dresses one part of one object)."""
    return next(p for spec in (CATALOG | NOVEL_CATALOG).values() for p in spec.parts if p.texture == name)


def write_textures(folder: Path) -> dict[str, Path]:
    """Class textures as PNG files in `folder` (pybullet loads textures from files), laid out for
    the meshes of `meshes` (design, lid and top colours)."""
    out = {}
    for name, design in DESIGNS.items():
        part = textured_part(name)
        repeats = wraps(*part.size) if part.shape == "cylinder" else \
            wraps(math.hypot(*part.size[:2]) / 2 ** 1.5, part.size[2]) if part.shape == "bottle" else 1
        out[name] = folder / f"{name}.png"
        cv2.imwrite(str(out[name]), atlas(draw_texture(name), _LIDS.get(name, METAL),
                                          _TOPS.get(name, design.background), repeats))
    return out
