"""classify_node throughput and latency over real Fast DDS. Not a test.

Feeds 300 frames with 10 objects each (rendered tabletop scenes, 640x480 rgb8 + 16UC1) to the running
node, whose model is a 50,000-sample kNN (the default model's patches, augmented). Reports
the node's own receipt -> publish latency (from /diagnostics), the tester's publish -> receive
latency, sustained throughput, dropped pairs and the node's memory before/after.

  python bench/node_bench.py [--frames 300] [--rate 30] [--device auto] [--workers 1] [--size 1280x720]
      [--features hog_color|cnn_color] [--index-size 50000] [--bench-data FILE.npz | --save-bench-data FILE.npz]
      [--default-transport | --publisher-defaults] [--publisher-qos reliable|best_effort]
      [--node-qos best_available|reliable|best_effort] [--model 50k|default]

A machine without the renderer (the GPU machine) takes the recipe's crops and the frames from a
file that `--save-bench-data` wrote on one with it (`--bench-data`).

Transport set-ups:
- default: both processes use config/fastdds_large_images.xml (a robot set up per the README);
- --publisher-defaults: the publisher (the camera driver's stand-in) runs with Fast DDS's own
  defaults, the node with what classify.launch.py gives it: how most users run a camera driver;
- --default-transport: both with Fast DDS's defaults.

Latency while teaching: --teach-every 1.5 --interleave 10 sends a ~/teach request every 1.5 s
in alternate 10 s blocks and compares the two kinds of block within one run, twice: on the
tester's publish -> receive times per frame ("interleaved"; this process's own jitter included)
and on the node's receipt -> publish percentiles per block ("interleaved_node").
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "test"))


def shifted_copies(images: np.ndarray, labels: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n crops from `images`: copies shifted by up to 2 px, every other one mirrored (a large index
    of plausible crops from a small set; `gpu_bench.py` builds its index the same way)."""
    rng = np.random.default_rng(0)
    reps = int(np.ceil(n / len(images)))
    out = np.concatenate([np.roll(images[:, :, ::-1] if r % 2 else images,
                                  (int(rng.integers(-2, 3)), int(rng.integers(-2, 3))), axis=(1, 2))
                          for r in range(reps)])[:n]
    return out, np.tile(labels, reps)[:n]


def big_model(path: Path, n: int = 50_000, kind: str = "hog_color", patches: tuple | None = None,
              device: str = "cpu") -> Path:
    """A kNN of `n` samples: the recipe's training crops (or `patches`, (images, labels)), shifted and
    mirrored until there are n, with `kind` features computed on `device`; the default model's classes and k."""
    from robot_classify.runtime.default_model import get_default_model
    from robot_classify.learn.features import FeaturePipeline
    from robot_classify.learn.knn import KNNClassifier
    from robot_classify.learn.model import ClassifierModel
    from robot_classify.learn.model_io import save_model

    base = get_default_model(device="cpu")
    if patches is None:
        from robot_classify.data.datasets import load_dataset
        from robot_classify.sim.default_recipe import recipe_patches

        tr = load_dataset(recipe_patches(), "props")["train"]
        patches = (tr.images, tr.labels)
    imgs, labels = shifted_copies(*patches, n)
    k = base.classifier.k
    params = {"kind": kind} if kind.startswith("cnn") else {"kind": kind, "pca_dims": 0, "center": False}
    model = ClassifierModel(FeaturePipeline(**params).to(device), KNNClassifier(k, "l2", device="cpu"),
                            base.class_names).fit(imgs, labels)
    model.meta = {"name": f"bench-knn-{n // 1000}k-{kind}"}
    return save_model(model, path)


def save_bench_data(path: Path, size: tuple[int, int] = (640, 480)) -> Path:
    """The recipe's crops and the rendered frames in one file, for a machine without the renderer
    (a GPU machine): `--bench-data` reads it back."""
    from robot_classify.data.datasets import load_dataset
    from robot_classify.sim.default_recipe import recipe_patches
    from scene_fixtures import camera_k

    splits = load_dataset(recipe_patches(), "props")
    scenes = ten_object_frames(width=size[0], height=size[1])
    np.savez(path, train_images=splits["train"].images, train_labels=splits["train"].labels,
             test_images=splits["test"].images, test_labels=splits["test"].labels,
             color=np.stack([s.color for s in scenes]), depth=np.stack([s.depth for s in scenes]),
             k=np.array(camera_k(scenes[0]), np.float64))
    return path


def ten_object_frames(n: int = 10, width: int = 640, height: int = 480):
    """Rendered tabletop frames with 10 objects each (seeds the default model never saw). Another
    size keeps the field of view (focal length scaled with the width): a 1280x720 camera's frames."""
    from robot_classify.sim.scene_render import SceneRenderer

    with SceneRenderer(width, height, 615.0 * width / 640) as r:
        return [r.render(800_000_000 + i, n_objects=(10, 10), max_distractors=0) for i in range(n)]


def teaching_block(index: int) -> bool:
    """With --interleave, blocks 0, 2, 4, ... of the run teach and the others do not."""
    return index % 2 == 0


def interleaved(h, sent: dict[int, float], t0: float, block_s: float) -> dict:
    """Publish -> receive latency of the frames sent in teaching blocks against those sent in
    blocks without, from one run. The first second of a block without teaching is left out: a
    request sent at the end of the block before may still be collecting or applying."""
    from robot_classify.runtime.stamps import stamp_to_ns

    lat: dict[str, list[float]] = {"teaching": [], "none": []}
    for doc, at in zip(list(h.received), list(h.received_at)):
        stamp = stamp_to_ns(**doc["header"]["stamp"])
        if stamp not in sent:
            continue
        t = sent[stamp] - t0
        block, into = divmod(t, block_s)
        if teaching_block(int(block)):
            lat["teaching"].append(at - sent[stamp])
        elif into >= 1.0:
            lat["none"].append(at - sent[stamp])
    return {kind: {"frames": len(v), "p50_ms": float(np.percentile(v, 50) * 1000) if v else None,
                   "p99_ms": float(np.percentile(v, 99) * 1000) if v else None} for kind, v in lat.items()}


def node_side_blocks(diags: list, t0: float, wall: float, block_s: float) -> dict:
    """The node's own receipt -> publish latency per block, free of this process's jitter.
    /diagnostics (1 Hz) reports percentiles over the node's last 300 frames, 10 s at 30 Hz: the
    last message of each block covers that block (its first half second or so may fall in the
    block before). Per kind of block: every block's p50 / p99 and their medians."""
    blocks: dict[str, list[dict]] = {"teaching": [], "none": []}
    for b in range(int(wall // block_s)):
        end = t0 + (b + 1) * block_s
        last = [m for at, m in diags if end - 1.0 <= at <= end]
        if not last:
            continue
        values = {kv.key: kv.value for kv in last[-1].status[0].values}
        blocks["teaching" if teaching_block(b) else "none"].append(
            {"block": b, "latency_p50_ms": float(values["latency_p50_ms"]),
             "latency_p99_ms": float(values["latency_p99_ms"]),
             "processing_p99_ms": float(values["processing_p99_ms"])})
    out: dict = {}
    for kind, rows in blocks.items():
        out[kind] = {"blocks": rows}
        if rows:
            for key in ("latency_p50_ms", "latency_p99_ms", "processing_p99_ms"):
                out[kind][f"median_{key}"] = float(np.median([r[key] for r in rows]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--rate", type=float, default=30.0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workers", type=int, default=1)
    transport = ap.add_mutually_exclusive_group()
    transport.add_argument("--default-transport", action="store_true",
                           help="both processes with Fast DDS defaults (512 KB shared-memory segments)")
    transport.add_argument("--publisher-defaults", action="store_true",
                           help="the publisher with Fast DDS defaults, the node with the launch file's profile")
    ap.add_argument("--publisher-qos", default="reliable", choices=["reliable", "best_effort"])
    ap.add_argument("--node-qos", default="best_available", choices=["best_available", "reliable", "best_effort"])
    ap.add_argument("--model", default="50k",
                    help="50k: a 50,000-sample kNN (speed); default: the shipped model (delivery runs); or a file")
    ap.add_argument("--features", default="hog_color", choices=["hog_color", "cnn_color", "cnn"],
                    help="--model 50k: the index's features")
    ap.add_argument("--index-size", type=int, default=50_000, help="--model 50k: samples in the index")
    ap.add_argument("--bench-data", type=Path, help="crops and frames from --save-bench-data (no rendering)")
    ap.add_argument("--save-bench-data", type=Path, help="render the crops and frames into this file and stop")
    ap.add_argument("--k", type=int, default=0, help="the node's k parameter (0 = the model's own)")
    ap.add_argument("--tag", default="", help="suffix of the result file name")
    ap.add_argument("--size", default="640x480", help="WIDTHxHEIGHT of the rendered frames (1280x720: a RealSense "
                                                     "D4xx's default colour size)")
    ap.add_argument("--teach-every", type=float, default=0.0,
                    help="seconds between ~/teach requests during the measured run (0 = none): each takes "
                         "10 views of the object nearest the centre and adds them to the running index")
    ap.add_argument("--interleave", type=float, default=0.0,
                    help="with --teach-every: teach only in every other block of this many seconds and compare "
                         "the frames of both kinds of block within the one run (the VM's drift hits both alike)")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="a node parameter (YAML value), e.g. teach.occluded_crops=0; repeatable")
    ap.add_argument("--node-profile", default=str(Path(__file__).parents[1] / "config" / "fastdds_large_images.xml"),
                    help="the node's Fast DDS profile (what classify.launch.py gives it)")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    if args.save_bench_data:
        print(f"wrote {save_bench_data(args.save_bench_data, (width, height))}")
        return
    data = np.load(args.bench_data) if args.bench_data else None
    tmp = Path(tempfile.mkdtemp())
    if args.model == "50k":
        patches = (data["train_images"], data["train_labels"]) if data is not None else None
        from robot_classify.learn.device import resolve_device

        model_path = big_model(tmp / "knn50k.safetensors", args.index_size, args.features, patches,
                               str(resolve_device(args.device)))
    elif args.model == "default":
        from robot_classify.runtime.default_model import default_model_path

        model_path = default_model_path()
    else:
        model_path = Path(args.model)
    node_env = {"FASTRTPS_DEFAULT_PROFILES_FILE": args.node_profile}
    if args.default_transport or args.publisher_defaults:  # an empty profile: Fast DDS's own defaults
        (tmp / "empty.xml").write_text('<profiles xmlns="http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"/>')
        os.environ["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(tmp / "empty.xml")
        if args.default_transport:
            node_env = {}
    from ros_harness import RosHarness  # sets isolated discovery before rclpy starts
    from robot_classify.runtime.stamps import stamp_to_ns

    from diagnostic_msgs.msg import DiagnosticArray

    diags = []
    import yaml

    extra = {name: yaml.safe_load(value) for name, value in (p.split("=", 1) for p in args.param)}
    spawned = time.monotonic()
    h = RosHarness(str(model_path), params={"workers": args.workers, "device": args.device,
                                            "qos.reliability": args.node_qos, "k": args.k, **extra},
                   node_env=node_env, publisher_reliability=args.publisher_qos)
    diag_at: list[float] = []  # when each /diagnostics message arrived (time.monotonic)

    def on_diag(m) -> None:
        diags.append(m)
        diag_at.append(time.monotonic())

    h.node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    teach = None
    if args.teach_every > 0:
        from test_node_teach import TeachClient

        teach = TeachClient(h)
        next_teach, taught = 0.0, 0
    if data is not None:
        scenes = [SimpleNamespace(color=c, depth=d) for c, d in zip(data["color"], data["depth"])]
        K = [float(v) for v in data["k"]]
        height, width = scenes[0].depth.shape
    else:
        from scene_fixtures import camera_k

        scenes = ten_object_frames(width=width, height=height)
        K = camera_k(scenes[0])  # the renderer's own intrinsics, as every scene has

    def rss_mb() -> float:
        with open(f"/proc/{h.proc.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024

    def cpu_s(pid: int) -> float:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    # The node is discovered before its warm-up ends (a CUDA trunk captures its graphs then, seconds):
    # one frame every 0.5 s until the first answer, so that the measured run starts on a running node.
    discovered, first_label = time.monotonic(), None
    for j in range(240):
        stamp = 500_000_000 + j * 1_000_000  # before the warm-up's stamps
        h.publish_frame(scenes[0].color, scenes[0].depth, K, stamp, info_lead=0.0)
        try:
            h.wait_for(stamp, timeout=0.5)
            first_label = time.monotonic()
            break
        except TimeoutError:
            pass
    if first_label is None:
        raise SystemExit("the node answered no frame in 120 s:\n" + "\n".join(h.log[-20:]))
    # Warm-up, then the measured run.
    for i in range(10):
        s = scenes[i % len(scenes)]
        h.publish_frame(s.color, s.depth, K, 1_000_000_000 + i * int(1e9 / args.rate), info_lead=0.0)
        time.sleep(1 / args.rate)
    time.sleep(1.0)
    mem_before = rss_mb()
    sent: dict[int, float] = {}
    h.received.clear()
    h.received_at.clear()
    cpu0 = {"node": cpu_s(h.proc.pid), "publisher": cpu_s(os.getpid())}
    t0 = time.monotonic()
    for i in range(args.frames):
        stamp = 1_000_000_000 + (10 + i) * int(1e9 / args.rate)  # continues the warm-up stamps
        sent[stamp] = time.monotonic()
        s = scenes[i % len(scenes)]
        h.publish_frame(s.color, s.depth, K, stamp, info_lead=0.0)
        if teach is not None and time.monotonic() - t0 >= next_teach:
            if not args.interleave or teaching_block(int((time.monotonic() - t0) // args.interleave)):
                teach.send(teach.teach_pub, json.dumps({"label": f"bench_object_{taught}", "views": 10}))
                taught += 1
            next_teach += args.teach_every
        time.sleep(max(0.0, t0 + (i + 1) / args.rate - time.monotonic()))
    wall = time.monotonic() - t0
    cpu = {k: (cpu_s(pid) - cpu0[k]) / wall for k, pid in (("node", h.proc.pid), ("publisher", os.getpid()))}
    time.sleep(2.0)
    mem_after = rss_mb()
    got = {stamp_to_ns(**d["header"]["stamp"]): d for d in h.received}
    got = {stamp: d for stamp, d in got.items() if stamp in sent}  # a late warm-up frame is not this run's
    objects = [len(d["objects"]) for d in got.values()]
    status = diags[-1].status[0] if diags else None
    values = {kv.key: kv.value for kv in status.values} if status else {}
    result = {"frames_sent": args.frames, "frames_labelled": len(got), "rate_hz_offered": args.rate,
              "rate_hz_sent": args.frames / wall, "throughput_fps": len(got) / wall,
              "objects_per_frame_median": float(np.median(objects)) if objects else 0,
              "node_latency_ms_p50": float(values.get("latency_p50_ms", "nan")),
              "node_latency_ms_p99": float(values.get("latency_p99_ms", "nan")),
              "node_processing_ms_p50": float(values.get("processing_p50_ms", "nan")),
              "node_processing_ms_p99": float(values.get("processing_p99_ms", "nan")),
              "node_waiting_ms_p50": float(values.get("waiting_p50_ms", "nan")),
              "node_waiting_ms_p99": float(values.get("waiting_p99_ms", "nan")),
              "dropped_pairs": int(values.get("dropped_pairs", -1)),
              "late_results": int(values.get("late_results", -1)),
              "unpaired": int(values.get("unpaired_colour", 0)) + int(values.get("unpaired_depth", 0)),
              "workers": args.workers, "device": values.get("device"),
              "transport": ("fastdds defaults" if args.default_transport else "publisher: fastdds defaults, node: "
                            "config/fastdds_large_images.xml" if args.publisher_defaults
                            else "config/fastdds_large_images.xml"),
              "publisher_qos": args.publisher_qos, "node_qos": args.node_qos, "model": args.model,
              "index": {"features": args.features, "samples": args.index_size} if args.model == "50k" else None,
              "diagnostics_level": int.from_bytes(status.level, "little") if status else None,
              "diagnostics_message": status.message if status else None,
              "node_warnings": [line for line in h.log if "WARN" in line][:8], "skipped": values.get("skipped"),
              "colour_loss_estimated": values.get("color_loss_estimated"),
              "colour_received_hz": values.get("color_received_hz"),
              "node_rss_mb_before": mem_before, "node_rss_mb_after": mem_after,
              "node_cpu_cores": cpu["node"], "publisher_cpu_cores": cpu["publisher"], "cpu_cores": os.cpu_count()}
    result["start_s"] = {"spawn_to_discovered": round(discovered - spawned, 2),
                         "spawn_to_first_label": round(first_label - spawned, 2)}
    result["params"] = extra
    result["size"] = [width, height]
    if args.interleave and teach is not None:
        result["interleaved"] = interleaved(h, sent, t0, args.interleave)
        result["interleaved_node"] = node_side_blocks(list(zip(diag_at, diags)), t0, wall, args.interleave)
    if teach is not None:
        states = [st["state"] for st in teach.statuses]
        result.update({"teach_every_s": args.teach_every, "teach_requests": taught, "teach_done": states.count("done"),
                       "teach_failed": states.count("failed"), "teach_views_added": 10 * states.count("done")})
    h.close()
    print(json.dumps(result, indent=2))
    suffix = ("_default_transport" if args.default_transport else "_publisher_defaults" if args.publisher_defaults
              else "") + (f"_{args.tag}" if args.tag else "")
    out = Path(__file__).parent / "results" / f"node_{(result['device'] or 'cpu').split(':')[0]}{suffix}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    os.environ.setdefault("ROS_DOMAIN_ID", "77")
    main()
