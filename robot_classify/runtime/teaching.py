"""Live teaching: collect views of one object from the processed frames, add them to the
running kNN model between two frames, forget a class, save the result.

A kNN's training is memorising examples, so a robot can learn an object in the seconds it
takes to see it ten times. The node and the offline `robot-classify teach` both drive a
`Teacher` with the `FrameResult`s the `FrameProcessor` makes: a view is exactly the 32x32
crop the node classifies, and the features come from the model's own pipeline.

Why a `Teacher` and not the node: the rules (one request at a time, which object a request
means, timeouts, the model's identity after a change, where a save goes) are the same for
live and recorded data, and are tested without ROS.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..learn.cache import cache_dir
from ..learn.features import with_mirror_images
from ..learn.model import derived_name, is_negative, negative_in_other_case
from ..learn.model_io import file_sha256, save_model
from .frame_processor import FrameProcessor, FrameResult
from .patches import DetectedObject, Extraction, jittered_crop, occluded_crop, rebalanced
from .results import CLASS_NAME, CLASS_NAME_RULE, RESERVED_LABELS, FrameLabels

DEFAULT_VIEWS, MAX_VIEWS = 10, 200
SELECT_MODES = ("center", "largest")
STATES = ("collecting", "done", "failed")
# A pixel that selects no object in this many frames before the first view fails the request:
# the user clicked on what is in view, so the object is not there (found from outside: a click on
# the table waited out `teach.timeout`, 30 s). `largest` and `center` wait for an object to come.
PIXEL_MISSES = 30
# While the object stays in view, each view must be the previous view's object: its box's centre
# moved at most SAME_SHIFT of that box's larger side, and its area within a factor of SAME_AREA;
# a frame whose selected object is not is skipped. Found from outside: `teach --bag --select
# center` on frames of other scenes took whichever object was nearest the centre (three
# different objects, and a 62x25 px scrap, under one label) and said nothing. At a camera's
# rate an object standing on the table moves a few pixels between views; a segment that
# swallowed a neighbour doubles. A frame with nothing at the selection (the object lifted to
# turn it) ends the run: the next object there starts a new one.
SAME_SHIFT, SAME_AREA = 0.5, 2.0
LINEAR_REFUSAL = ("this model is linear: a linear classifier cannot take new examples without retraining "
                  "(robot-classify train); teaching needs a kNN model")


class TeachError(ValueError):
    """A request the teacher refuses; the message is the status's `reason`."""


@dataclass(frozen=True)
class TeachRequest:
    label: str
    views: int = DEFAULT_VIEWS
    select: str | tuple[int, int] = "center"  # "center", "largest" or an (x, y) pixel
    request_id: str = ""  # the client's `id`, echoed in every status of this request


@dataclass
class TeachStatus:
    """What `~/teach/status` carries (one JSON document per change)."""
    label: str
    state: str
    views: int = 0
    views_wanted: int = 0
    n_samples: int = 0  # examples the model now holds for `label`
    classes: list[str] = field(default_factory=list)
    reason: str = ""
    action: str = "teach"  # or "forget": a forget that is done looks like a teach that is done otherwise
    # The request's `id` if it gave one: the status topic keeps the last 10 for late joiners, so a
    # client matching by label alone could take an earlier request's `done` for its own (found from outside)
    request_id: str = ""

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def known_classes(self) -> list[str]:
        """`classes` without the negative labels: what "N classes" counts (as the node's "ready:" line)."""
        return [c for c in self.classes if not is_negative(c)]


def check_label(label: Any) -> str:
    """A class name a request may create: letters, digits, `_ . -`, 1 to 64 characters. Spaces
    and slashes would make a label a consumer cannot match or a file name cannot hold.

    `unknown` and `distractor` (`learn.model.NEGATIVE_LABELS`) teach what is none of the
    classes: the views become negative examples, and an object that resembles them is
    `unknown` from then on (a thing on the table the node keeps naming)."""
    if label is not None and not isinstance(label, str):
        raise TeachError(f"label must be a class name (text such as my_mug), got {_short(repr(label))}")
    if not label or not label.strip():
        raise TeachError("empty label: send a class name such as my_mug")
    if not CLASS_NAME.fullmatch(label):
        raise TeachError(f"label {_short(repr(label))} is not a class name: use {CLASS_NAME_RULE}")
    negative = negative_in_other_case(label)
    if negative:
        raise TeachError(f"label {label!r} is not a class name: {negative!r} (lower case) teaches what is none "
                         "of the classes")
    if label.lower() in RESERVED_LABELS:
        raise TeachError(f"label {label!r} is reserved: replay-eval and class maps use "
                         f"{', '.join(RESERVED_LABELS)}; to teach what is none of the classes, use 'unknown'")
    return label


def _short(text: str, limit: int = 42) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _check_views(views: Any) -> int:
    if isinstance(views, bool) or not isinstance(views, int) or not 1 <= views <= MAX_VIEWS:
        raise TeachError(f"views must be an integer in [1, {MAX_VIEWS}], got {views!r}")
    return views


def _check_select(select: Any) -> str | tuple[int, int]:
    if isinstance(select, str) and select in SELECT_MODES:
        return select
    if isinstance(select, dict) and set(select) == {"x", "y"}:
        x, y = select["x"], select["y"]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in (x, y)):
            return int(x), int(y)
    raise TeachError(f'select must be "center", "largest" or {{"x": px, "y": py}} with integer pixels, '
                     f"got {json.dumps(select)[:60]}")


def parse_teach_request(text: str) -> TeachRequest:
    """`my_mug`, or JSON `{"label": "my_mug", "views": 10, "select": "center"}`."""
    text = (text or "").strip()
    if not text.startswith("{"):
        return TeachRequest(check_label(text))
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise TeachError(f"teach request is not valid JSON ({e.msg} at character {e.pos})") from None
    if not isinstance(doc, dict):
        raise TeachError(f"a teach request is a label or a JSON object, got {_short(text)}")
    unknown = sorted(set(doc) - {"label", "views", "select", "id"})
    if unknown:
        raise TeachError(f"unknown field(s) {', '.join(map(repr, unknown))} (expected label, views, select, id)")
    return TeachRequest(check_label(doc.get("label")), _check_views(doc.get("views", DEFAULT_VIEWS)),
                        _check_select(doc.get("select", "center")), _check_id(doc.get("id", "")))


def _check_id(request_id: Any) -> str:
    if not isinstance(request_id, str) or len(request_id) > 64 or not request_id.isprintable():
        raise TeachError(f"id must be text of at most 64 printable characters, got {_short(repr(request_id))}")
    return request_id


def check_pixel(select: str | tuple[int, int], width: int, height: int) -> None:
    if isinstance(select, tuple) and not (0 <= select[0] < width and 0 <= select[1] < height):
        raise TeachError(f"select pixel ({select[0]}, {select[1]}) is outside the {width}x{height} image")


def select_object(objects: Sequence[DetectedObject], select: str | tuple[int, int], width: int, height: int
                  ) -> int | None:
    """Index of the object a request means in one frame, or None if none qualifies.

    center: the box centre nearest the image centre; largest: most pixels; (x, y): the object
    whose mask holds that pixel, else the smallest whose box holds it (a click at the middle of
    a mug seen from above lands in its opening, inside the box but outside the mask)."""
    if not objects:
        return None
    if select == "largest":
        return int(np.argmax([o.pixels for o in objects]))
    if select == "center":
        d = [(o.bbox[0] + o.bbox[2] / 2 - width / 2) ** 2 + (o.bbox[1] + o.bbox[3] / 2 - height / 2) ** 2
             for o in objects]
        return int(np.argmin(d))
    x, y = select
    boxed = []
    for i, o in enumerate(objects):
        bx, by, bw, bh = o.bbox
        if bx <= x < bx + bw and by <= y < by + bh:
            if o.mask[y - by, x - bx]:
                return i
            boxed.append((bw * bh, i))
    return min(boxed)[1] if boxed else None


def default_save_path(model_path: str | Path | None, now: datetime | None = None) -> Path:
    """Where `~/save_model` writes when `teach.save_path` is empty: beside the model it started
    from, else (the embedded default, or a folder it may not write) in the cache. A new,
    time-stamped name every time, so no save replaces an earlier one or the shipped default."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    if model_path:
        src = Path(model_path)
        stem = re.sub(r"-taught-\d{8}T\d{6}Z$", "", src.name.removesuffix(".safetensors"))
        folder = src.parent if os.access(src.parent, os.W_OK) else cache_dir() / "models"
    else:
        stem, folder = "default", cache_dir() / "models"
    return folder / f"{stem}-taught-{stamp}.safetensors"


def _chain(sha: str, *parts: bytes) -> str:
    """The identity after a change: sha256 over the previous identity and what changed. Cheap
    (no re-serialising a 150 MB index per view) and unique per history; a save replaces it by
    the file's own sha256, which a restart from that file reports too."""
    h = hashlib.sha256(sha.encode())
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()


@dataclass
class _ViewSource:
    """One taught view: the crop the node classified, and the region around it (a copy, not
    the frame) with the object's mask and box, from which the apply thread cuts the extra
    examples (`Teacher._extra_crops`), off the frame workers."""
    patch: np.ndarray
    region: np.ndarray
    mask: np.ndarray  # region-sized uint8
    box: tuple[int, int, int, int]  # the object's box in the region
    top: float | None = None  # how high it stood above the support (the pose it was taught in)


@dataclass
class _Session:
    request: TeachRequest
    started: float
    last_view: float = 0.0  # when the latest view was taken (the start before the first)
    sources: list[_ViewSource] = field(default_factory=list)  # each view's crop, and what its extra crops are cut from
    skipped: int = 0  # processed frames without the requested object
    moved: int = 0  # ...or whose selected object was not the previous view's (`same_object`)
    box: tuple[int, int, int, int] | None = None  # the previous view's box, while the object stays in view
    # The latest view's frame: its segments, their labels then, and which one is the view (`_after_note`)
    frame: tuple[Extraction, FrameLabels, int] | None = None

    @property
    def views(self) -> int:
        return len(self.sources)


class Teacher:
    """One teach request at a time (a second one while collecting is refused, with the reason:
    queueing would silently take views meant for the first object); forget and save any time.

    Thread-safe: the node's workers call `offer` side by side, ROS callbacks call the rest.
    Changes to the model take the processor's write lock, so they land between frames.
    """

    def __init__(self, processor: FrameProcessor, timeout_s: float = 30.0, jitter_crops: int = 3,
                 mirror: bool = True, occluded_crops: int = 3, white_balance: float = 0.15,
                 clock: Callable[[], float] = time.monotonic,
                 on_done: Callable[[TeachStatus], None] | None = None) -> None:
        """`on_done`: apply completed requests on a thread of their own and report there (the
        node: a frame worker never waits for features and the index append); None: in `offer`."""
        self.processor = processor
        self._on_done = on_done
        self.timeout_s = float(timeout_s)
        self.jitter_crops = int(jitter_crops)
        self.mirror = bool(mirror)
        self.occluded_crops = int(occluded_crops)
        self.white_balance = float(white_balance)
        self._clock = clock
        self._lock = threading.Lock()
        self._apply_lock = threading.Lock()
        self._session: _Session | None = None
        self._applying: list[str] = []  # labels whose views are being added (collected, not yet done)

    @property
    def model(self):
        return self.processor.model

    @property
    def collecting(self) -> bool:
        return self._session is not None

    def _status(self, label: str, state: str, views: int = 0, wanted: int = 0, reason: str = "",
                action: str = "teach") -> TeachStatus:
        with self.processor.model_lock.reading():
            return TeachStatus(label, state, views, wanted, self.model.class_count(label),
                               list(self.model.class_names), reason, action)

    def _failed(self, label: str, reason: str, views: int = 0, wanted: int = 0, action: str = "teach") -> TeachStatus:
        return self._status(label if isinstance(label, str) else "", "failed", views, wanted, reason, action)

    # ------------------------------------------------------------------ requests
    def request(self, text: str) -> TeachStatus:
        """Start collecting for a `~/teach` message; the status says `collecting` or why not."""
        try:
            req = parse_teach_request(text)
        except TeachError as e:
            return _tagged(self._failed(_label_of(text), str(e)), _id_of(text))
        return _tagged(self._start(req), req.request_id)

    def _start(self, req: TeachRequest) -> TeachStatus:
        if self.model.kind != "knn":
            return self._failed(req.label, LINEAR_REFUSAL, wanted=req.views)
        with self._lock:
            if self._session is not None:
                busy = self._session
                return self._failed(req.label, f"busy: still collecting {busy.request.label!r} "
                                               f"({busy.views}/{busy.request.views} views); send again after "
                                               "its done or failed status", wanted=req.views)
            now = self._clock()
            self._session = _Session(req, now, now)
        return self._status(req.label, "collecting", 0, req.views)

    def offer(self, result: FrameResult) -> list[TeachStatus]:
        """Take the requested object's crop from one processed frame; statuses to publish."""
        statuses, req = self._offer(result)
        return [_tagged(st, req.request_id) for st in statuses]

    def _offer(self, result: FrameResult) -> tuple[list[TeachStatus], TeachRequest]:
        with self._lock:
            s = self._session
            if s is None:
                return [], TeachRequest("")
            req = s.request
            h, w = result.color.shape[:2]
            try:
                check_pixel(req.select, w, h)
            except TeachError as e:
                self._session = None
                return [self._failed(req.label, str(e), s.views, req.views)], req
            i = select_object(result.extraction.objects, req.select, w, h)
            if i is None:
                s.skipped += 1
                s.box = None  # out of view: where it comes back is its own
                if isinstance(req.select, tuple) and not s.views and s.skipped >= PIXEL_MISSES:
                    self._session = None  # a click on the table, not on an object: said now, not in 30 s
                    return [self._failed(req.label, f"{s.skipped} frames in a row had {_nothing_at(req.select)}",
                                         0, req.views)], req
                return self._expired(s) or [], req
            obj = result.extraction.objects[i]
            if s.box is not None and not same_object(s.box, obj.bbox):
                s.moved += 1
                return self._expired(s) or [], req
            s.box = tuple(int(v) for v in obj.bbox)
            s.sources.append(self._view_source(result.color, obj))
            s.frame = (result.extraction, result.labels, i)
            s.last_view = self._clock()
            if s.views < req.views:
                return [self._status(req.label, "collecting", s.views, req.views, self._skip_note(s))], req
            self._session = None
            self._applying.append(req.label)
        # Extra crops and features outside any lock (frames keep flowing); the index changes under the write lock.
        if self._on_done is None:
            return [self._apply(req, *self._examples(s.sources), s.views, heights=[v.top for v in s.sources],
                                frame=s.frame)], req
        threading.Thread(target=self._apply_in_background, args=(req, s.sources, s.frame),
                         name="robot_classify_teach", daemon=True).start()
        return [], req

    def _apply_in_background(self, req: TeachRequest, sources: list[_ViewSource],
                             frame: tuple[Extraction, FrameLabels, int] | None = None) -> None:
        try:
            status = self._apply(req, *self._examples(sources, yield_cpu=True), len(sources), yield_cpu=True,
                                 heights=[v.top for v in sources], frame=frame)
        except Exception as e:  # noqa: BLE001 -- reported as a status, never a dead thread
            status = self._failed(req.label, f"could not add the views: {type(e).__name__}: {e}", len(sources),
                                  req.views)
        self._on_done(_tagged(status, req.request_id))

    def _examples(self, sources: list[_ViewSource], yield_cpu: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Every view's crop and its extra crops, and the view each came from (for `novelty_scale`).
        `yield_cpu`: hand the interpreter back after each view (see `_features_between_frames`)."""
        crops = []
        for i, v in enumerate(sources, 1):
            crops += [v.patch, *self._extra_crops(v, i)]
            if yield_cpu:
                time.sleep(0)
        return np.stack(crops), np.repeat(np.arange(len(sources)), len(crops) // len(sources))

    def _view_source(self, color: np.ndarray, obj: DetectedObject) -> _ViewSource:
        """What the view's extra crops are cut from: a region one box size around the box holds
        every re-cut (shift <= 10%, scale <= 115%, padding), the same crops as on the whole frame."""
        p = self.processor.params
        x, y, w, h = obj.bbox
        m = int(max(w, h) * (1 + p.padding))
        H, W = color.shape[:2]
        x0, y0 = max(0, x - m), max(0, y - m)
        region = color[y0:min(H, y + h + m), x0:min(W, x + w + m)].copy()
        mask = np.zeros(region.shape[:2], np.uint8)
        mask[y - y0:y - y0 + h, x - x0:x - x0 + w] = obj.mask
        return _ViewSource(obj.patch.copy(), region, mask, (x - x0, y - y0, w, h), obj.top)

    def _extra_crops(self, view: _ViewSource, seed: int) -> list[np.ndarray]:
        """More examples from one view, as the scenes the object is met in later will differ from it:
        `jitter_crops` re-cuts as a slightly different segmentation would cut it
        (`patches.jittered_crop`, as the default model's recipe trains) and `occluded_crops`
        crops of a part of it, as a neighbour in front would leave it (`patches.occluded_crop`),
        each under another white balance and exposure (`patches.rebalanced`, gains 1 +-
        `white_balance`; 0: as seen). Measured one by one: bench/teach_bench.py, doc/teaching.md."""
        p = self.processor.params
        rng = np.random.default_rng(seed)  # reproducible: the same views give the same examples

        def lit() -> np.ndarray:
            return rebalanced(view.region, rng, self.white_balance, self.white_balance) if self.white_balance \
                else view.region

        crops = [jittered_crop(lit(), view.box, view.mask, rng, p.padding, p.mask_background)
                 for _ in range(self.jitter_crops)]
        return crops + [occluded_crop(lit(), view.mask, rng, p.padding, p.mask_background)
                        for _ in range(self.occluded_crops)]

    def add_views(self, label: str, patches: np.ndarray) -> TeachStatus:
        """Teach from crops already in hand (`robot-classify teach --images`)."""
        try:
            check_label(label)
        except TeachError as e:
            return self._failed(label, str(e))
        if self.model.kind != "knn":
            return self._failed(label, LINEAR_REFUSAL)
        return self._apply(TeachRequest(label, len(patches)), patches, np.arange(len(patches)), len(patches))

    def cancel(self, reason: str) -> TeachStatus | None:
        """End a collecting request as failed (a bag that ran out of frames); None if idle."""
        with self._lock:
            s, self._session = self._session, None
        if s is None:
            return None
        skipped = f" ({_missed(s)})" if s.skipped or s.moved else ""
        return _tagged(self._failed(s.request.label, f"{reason}, with {s.views}/{s.request.views} views{skipped}",
                                    s.views, s.request.views), s.request.request_id)

    def check_timeout(self) -> TeachStatus | None:
        """Called about once a second: fails a request that has waited `timeout_s` for its next
        view (no object in sight, or no frames at all). A slow camera that still brings views
        keeps it going: 200 views need not come within one timeout."""
        with self._lock:
            s = self._session
            return None if s is None else (self._expired(s) or [None])[0]

    def _expired(self, s: _Session) -> list[TeachStatus] | None:
        """Under self._lock."""
        if self._clock() - s.last_view <= self.timeout_s:
            return None
        self._session = None
        why = (_missed(s) if s.skipped or s.moved or s.views else
               "no frame was processed: is the camera publishing?")
        return [_tagged(self._failed(s.request.label, f"no new view for {self.timeout_s:g} s, with {s.views}/"
                                                      f"{s.request.views} views ({why})", s.views, s.request.views),
                        s.request.request_id)]

    @staticmethod
    def _skip_note(s: _Session) -> str:
        notes = [f"{s.skipped} frame(s) without the object skipped"] if s.skipped else []
        if s.moved:
            notes.append(f"{s.moved} frame(s) with another object there skipped")
        return "; ".join(notes)

    def _apply(self, req: TeachRequest, patches: np.ndarray, groups: np.ndarray, views: int,
               yield_cpu: bool = False, heights: list[float | None] | None = None,
               frame: tuple[Extraction, FrameLabels, int] | None = None) -> TeachStatus:
        try:
            return self._apply_views(req, patches, groups, views, yield_cpu, heights, frame)
        finally:
            with self._lock:
                if req.label in self._applying:
                    self._applying.remove(req.label)

    def _apply_views(self, req: TeachRequest, patches: np.ndarray, groups: np.ndarray, views: int,
                     yield_cpu: bool = False, heights: list[float | None] | None = None,
                     frame: tuple[Extraction, FrameLabels, int] | None = None) -> TeachStatus:
        """Features, then the novelty scale under the read lock (frames go on), then the append
        under the write lock, one request at a time. With `mirror`, each crop's mirror image is an example too: a
        turned object shows its other side, and ten views are few (bench/teach_bench.py). `heights`:
        each view's height above the support, the poses it was taught in (`ClassifierModel.resting`).
        `frame`: the latest view's frame, asked again afterwards (`_after_note`)."""
        with self._apply_lock:  # two finished requests (a slow cnn apply) never grow the index at once
            status = self._apply_locked(req, patches, groups, views, yield_cpu, heights)
        if status.state == "done" and frame is not None:
            status.reason = self._after_note(req.label, *frame)
        return status

    def _after_note(self, label: str, ex: Extraction, before: FrameLabels, view: int) -> str:
        """What teaching changed in its own frame, said in the done status: other objects there named
        otherwise now (a new class's few views win neighbours the renders held, found from outside:
        a drill and a soup can became `my_box` at 0.95, and its balanced votes turned a Cheez-It box
        `unknown`), and a taught view whose class the size or pose check rules out (found from
        outside: "done", and the mustard stayed unknown; since 0.9.12 the view gets the trained
        examples' answer there)."""
        after = self.processor.label_extraction(ex, before.stamp, before.frame_id).objects
        with self.processor.model_lock.reading():
            names, resting = list(self.model.class_names), self.model.resting
            fits = self.processor.size_and_pose(ex, names, resting)
        notes = []
        changed = [f"{b.label} -> {a.label} at x {b.bbox[0]}, y {b.bbox[1]}"
                   for j, (b, a) in enumerate(zip(before.objects, after)) if j != view and a.label != b.label]
        if changed:  # the taught label taking them, or a new class's balanced votes moving them
            one = len(changed) == 1
            notes.append(f"{len(changed)} other object{'' if one else 's'} of the teaching frame "
                         f"{'is' if one else 'are'} named otherwise now ({'; '.join(changed)}): teach "
                         f"{'it as its' if one else 'them as their'} own class or as 'unknown', or teach more views")
        if after[view].label != label and fits is not None and label in names and not fits[view, names.index(label)]:
            # the node then answers there as the trained examples do (`ClassifierModel.evidence`)
            notes.append(f"the size and pose check rules {label!r} out for the taught view itself (the product's "
                         f"size or resting poses do not fit it), so the node answers there as its trained examples do "
                         f"({after[view].label!r}); set pose_check false, or teach it under a name of its own")
        return "; ".join(notes)

    def _apply_locked(self, req: TeachRequest, patches: np.ndarray, groups: np.ndarray, views: int,
                      yield_cpu: bool, heights: list[float | None] | None) -> TeachStatus:
        model, p = self.model, self.processor
        if self.mirror:
            patches, groups = with_mirror_images(patches, groups)
        try:
            X = _features_between_frames(model, patches, yield_cpu)
            with p.model_lock.reading():
                scale = model.novelty_scale(X, req.label, groups)
                model.reserve(len(X))  # the index's copy, if it must grow, while frames go on
            with p.model_lock.writing():
                n = model.add_features(X, req.label, scale, heights)
                p.model_sha256 = _chain(p.model_sha256, b"teach", req.label.encode(), np.ascontiguousarray(X).tobytes())
                _record(p, {"teach": req.label, "views": views, "examples": int(len(patches))})
        except (ValueError, RuntimeError) as e:
            return self._failed(req.label, f"could not add the views: {e}", views, req.views)
        return TeachStatus(req.label, "done", views, req.views, n, list(model.class_names), "")

    def forget(self, text: str) -> TeachStatus:
        """`~/forget`: remove a class and its examples (an original class too). The class as plain
        text, or as `~/teach` takes it: {"label": "..."} (found from outside: that was refused as
        "not a class of the model")."""
        label = (text or "").strip()
        if label.startswith("{"):
            try:
                doc = json.loads(label)
            except json.JSONDecodeError as e:
                return self._failed("", f"not valid JSON: {e.msg}; send the class's name, or {{\"label\": NAME}}",
                                    action="forget")
            if not isinstance(doc, dict) or set(doc) != {"label"} or not isinstance(doc["label"], str):
                return self._failed("", 'a JSON request to forget is {"label": NAME} and nothing else',
                                    action="forget")
            label = doc["label"].strip()
        if not label:
            return self._failed("", "empty label: send the class to forget", action="forget")
        # Forgetting the label being collected cancels its request: nothing else could, while
        # frames keep bringing views (found from outside: a 50-view request ran on to the end).
        with self._lock:
            s = self._session if self._session is not None and self._session.request.label == label else None
            if s is not None:
                self._session = None
            applying = label in self._applying
        if applying:  # its views are going in now; a forget before them would be undone by them
            return self._failed(label, f"the views of {label!r} are being added (its teach request has just "
                                       "collected them): forget it after its done status", action="forget")
        cancelled = "" if s is None else \
            f"cancelled the request collecting its views ({s.views}/{s.request.views}); nothing of it was added"
        if cancelled and self._on_done is not None:  # the request's own end, with its id (found in review)
            self._on_done(_tagged(self._failed(label, f"cancelled by ~/forget {label!r}", s.views, s.request.views),
                                  s.request.request_id))
        p, model = self.processor, self.model
        if model.kind != "knn":
            return self._failed(label, "this model is linear: forgetting a class needs retraining", action="forget")
        with p.model_lock.writing():
            if label not in model.class_names:
                reason = f"{label!r} is not a class of the model"
            elif is_negative(label):  # taught ones too: one label holds them all
                reason = (f"{label!r} holds the model's {model.class_count(label)} examples of objects of no class: "
                          "without them the node names clutter (they are how it says unknown). To undo "
                          f"teaching {label!r}, restart from the model file")
            else:
                k = p.k or model.forget_floor  # the override in force, else what the model needs
                left = model.classifier.index_.ntotal - model.class_count(label)
                reason = f"forgetting {label!r} would leave {left} examples, fewer than k={k}" if left < k else ""
            if not reason:
                try:
                    model.forget(label)
                except ValueError as e:
                    reason = str(e)
            if not reason:
                p.model_sha256 = _chain(p.model_sha256, b"forget", label.encode())
                _record(p, {"forget": label})
        if cancelled and label not in model.class_names:  # a new class: there was only the request
            return self._status(label, "done", reason=cancelled, action="forget")
        if reason:
            return self._failed(label, f"{cancelled}; {reason}" if cancelled else reason, action="forget")
        return self._status(label, "done", reason=cancelled, action="forget")

    def save(self, path: str | Path) -> Path:
        """Write the running model atomically; afterwards its identity is the file's sha256,
        the one a node started from that file reports. Raises OSError/ValueError with the reason."""
        p = self.processor
        with p.model_lock.reading():  # frames go on; a teach waits until the file is complete
            out = save_model(self.model, path)
            sha = file_sha256(out)
        with p.model_lock.writing():
            p.model_sha256 = sha
        return out


APPLY_BATCH = 8  # patches per feature call while applying a request (see _features_between_frames)


def _features_between_frames(model, patches: np.ndarray, yield_cpu: bool = False) -> np.ndarray:
    """The model's features of `patches`, a few at a time, handing the interpreter back after each.

    The apply thread runs beside the frame workers; HOG in one call over 60 crops holds the GIL
    for tens of milliseconds, and frames queued behind it (measured: p99 waiting 17 to 180 ms
    against 1 to 22 without teaching). A yield after every APPLY_BATCH patches lets a waiting
    worker in within one batch. With `yield_cpu` (the node's apply thread) it also rests as long
    as each batch took: a request then takes at most about half a core while it applies, on a
    machine the frame workers already keep busy, and `done` comes that much later (doc/teaching.md)."""
    out = []
    for i in range(0, len(patches), APPLY_BATCH):
        t0 = time.perf_counter()
        out.append(model.features.transform(patches[i:i + APPLY_BATCH]))
        time.sleep(time.perf_counter() - t0 if yield_cpu else 0)
    return np.concatenate(out)


def _record(processor: FrameProcessor, event: dict[str, Any]) -> None:
    """The model file's `training` field keeps what was taught (informational), and its name says
    that it was (`learn.model.derived_name`), in the file and in what the processor publishes."""
    model = processor.model
    training = dict(model.meta.get("training", {}))
    training["taught"] = [*training.get("taught", []), {**event, "at": datetime.now(timezone.utc).isoformat()}]
    model.meta["training"] = training
    model.meta["name"] = processor.model_name = derived_name(model.meta.get("name"), "taught")


def same_object(previous: tuple[int, int, int, int], box: tuple[int, int, int, int]) -> bool:
    """Whether `box` can be the object of the previous view's box `previous` (x, y, w, h), a
    frame or a few later: see SAME_SHIFT."""
    (x0, y0, w0, h0), (x, y, w, h) = previous, box
    shift = max(abs(x + w / 2 - x0 - w0 / 2), abs(y + h / 2 - y0 - h0 / 2))
    return shift <= SAME_SHIFT * max(w0, h0) and 1 / SAME_AREA <= (w * h) / max(w0 * h0, 1) <= SAME_AREA


def _missed(s: _Session) -> str:
    """The frames that gave no view, and why."""
    out = [f"{s.skipped} frame{'s' * (s.skipped != 1)} had {_nothing_at(s.request.select)}"] if s.skipped else []
    if s.moved:
        out.append(f"{s.moved} frame{'s' * (s.moved != 1)} had another object there than the previous view "
                   "(moved more than half its size, or of another size, with no frame between them out of view)")
    return "; ".join(out)


def _nothing_at(select: str | tuple[int, int]) -> str:
    """What a frame that gave no view lacked, as `select_object` looks for it."""
    if isinstance(select, tuple):
        return f"no segmented object at pixel ({select[0]}, {select[1]}); is the object there?"
    return "no object to take; is the object in view and segmented?"


def _tagged(status: TeachStatus, request_id: str) -> TeachStatus:
    status.request_id = request_id
    return status


def _id_of(text: str) -> str:
    """The `id` a refused request gave, if it is one `_check_id` takes (best effort)."""
    try:
        return _check_id(json.loads(text).get("id", ""))
    except (json.JSONDecodeError, AttributeError, TypeError, TeachError):
        return ""


def _label_of(text: str) -> str:
    """The label a refused request was about, for its status (best effort)."""
    text = (text or "").strip()
    if text.startswith("{"):
        try:
            label = json.loads(text).get("label", "")
            return label if isinstance(label, str) else ""
        except (json.JSONDecodeError, AttributeError):
            return ""
    return text[:64]
