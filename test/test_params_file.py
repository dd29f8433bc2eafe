"""One declaration of the node's parameters: the node and the offline commands read the same
params file, check it the same way, and so process a bag identically."""
import json

import pytest

from robot_classify.runtime.parameters import (PARAMETERS, ParameterError, check_parameters, read_params_file,
                                                segmentation)

NON_DEFAULT = """\
robot_classify:
  ros__parameters:
    min_score: 0.9
    top_k: 5
    k: 60
    max_objects: 6
    sync_slop: 0.01
    segmentation:
      padding: 0.3
      min_area: 300
      crease: 0.25
      mask_background: false
"""


def test_a_params_file_reads_like_the_node_reads_it(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text(NON_DEFAULT)
    values = read_params_file(f)
    assert set(values) == set(PARAMETERS)
    assert values["top_k"] == 5 and values["k"] == 60 and values["segmentation.padding"] == 0.3
    assert values["device"] == PARAMETERS["device"].default
    seg = segmentation(values)
    assert seg.max_objects == 6 and seg.min_area == 300 and seg.mask_background is False
    (tmp_path / "ns.yaml").write_text(NON_DEFAULT.replace("robot_classify:", "/left_arm/robot_classify:"))
    assert read_params_file(tmp_path / "ns.yaml", namespace="left_arm") == values
    (tmp_path / "all.yaml").write_text(NON_DEFAULT.replace("robot_classify:", "/**:"))
    assert read_params_file(tmp_path / "all.yaml") == values
    assert read_params_file(tmp_path / "all.yaml", namespace="left_arm") == values


def test_a_params_file_gives_each_namespace_its_own_section(tmp_path):
    """Tried from outside on 0.6.1: replay-eval merged every section ending in robot_classify (two
    arms' values mixed, which no node runs), and took a `/left_arm/robot_classify` section that
    the node in the root namespace ignores. Sections now apply as rcl applies them (checked
    against rclpy with these keys: tests of the launch namespace in doc/parameters.md)."""
    f = tmp_path / "arms.yaml"
    f.write_text("/left_arm/robot_classify:\n  ros__parameters: {min_score: 0.97, max_objects: 4}\n"
                 "/right_arm/robot_classify:\n  ros__parameters: {min_score: 0.1, top_k: 1}\n"
                 "/**/robot_classify:\n  ros__parameters: {k: 5}\n")
    left, right = (read_params_file(f, namespace=ns) for ns in ("left_arm", "/right_arm/"))
    assert (left["min_score"], left["max_objects"], left["top_k"], left["k"]) == (0.97, 4, 3, 5)
    assert (right["min_score"], right["max_objects"], right["top_k"], right["k"]) == (0.1, 20, 1, 5)
    assert read_params_file(f)["min_score"] == -1.0  # the root namespace: only the /** section
    g = tmp_path / "left.yaml"
    g.write_text("/left_arm/robot_classify:\n  ros__parameters: {min_score: 0.97}\n")
    with pytest.raises(ParameterError, match=r"no parameters for node '/robot_classify' \(nor '/\*\*'\); it has "
                                             r"/left_arm/robot_classify: give the node's namespace"):
        read_params_file(g)
    h = tmp_path / "relative.yaml"  # no leading slash: the root namespace only, as rcl reads it
    h.write_text("robot_classify:\n  ros__parameters: {min_score: 0.5}\n")
    assert read_params_file(h)["min_score"] == 0.5
    with pytest.raises(ParameterError, match="no parameters for node '/left_arm/robot_classify'"):
        read_params_file(h, namespace="left_arm")


def test_the_shipped_params_file_applies_in_any_namespace():
    """The launch file's namespace:= runs the node as /NS/robot_classify: config/classify.yaml
    keyed `robot_classify:` would have been ignored there, edits and all."""
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[1] / "config" / "classify.yaml"
    assert read_params_file(shipped, namespace="left_arm") == read_params_file(shipped)


@pytest.mark.parametrize("line, message", [
    ("    min_score: 2.0", "min_score must be in [-1.0, 1.0]"),
    ("    top_k: three", "top_k must be an integer"),
    ("    segmentation: {mode: sideways}", "segmentation.mode must be one of depth, mask, full"),
    ("    segmentation: {min_depth: 2.0, max_depth: 1.0}", "depth"),
    ("    workers: true", "workers must be an integer"),
    ("    min_score: .nan", "min_score must be finite"),
    ("    segmentation: {scale: 3}", "segmentation.scale must be one of 0, 1, 2, 4, got 3"),
])
def test_bad_values_in_a_params_file_are_refused_with_the_nodes_message(tmp_path, line, message):
    f = tmp_path / "bad.yaml"
    f.write_text("robot_classify:\n  ros__parameters:\n" + line + "\n")
    with pytest.raises(ParameterError, match=message.replace("[", r"\[").replace(".", r"\.")):
        read_params_file(f)


def test_a_name_the_node_does_not_have_is_ignored_with_a_warning_as_on_the_robot(tmp_path, caplog):
    """The node warns and runs without it (rclpy ignores an undeclared name); the offline
    commands refused the file, so they could not run with the robot's settings."""
    f = tmp_path / "typo.yaml"
    f.write_text("robot_classify:\n  ros__parameters: {min_scor: 0.5, top_k: 2}\n")
    assert read_params_file(f) == check_parameters({"top_k": 2})
    assert "min_scor: no such parameter of /robot_classify; ignored" in caplog.text


def test_an_integer_for_a_float_parameter_is_that_float(tmp_path):
    f = tmp_path / "int.yaml"
    f.write_text("robot_classify:\n  ros__parameters: {min_score: 1}\n")
    assert read_params_file(f)["min_score"] == 1.0


def test_files_that_are_no_params_file_say_so(tmp_path):
    (tmp_path / "other.yaml").write_text("some_other_node:\n  ros__parameters: {k: 1}\n")
    with pytest.raises(ParameterError, match="no parameters for node '/robot_classify'"):
        read_params_file(tmp_path / "other.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ParameterError, match="maps node names"):
        read_params_file(tmp_path / "list.yaml")
    with pytest.raises(FileNotFoundError):
        read_params_file(tmp_path / "missing.yaml")


def test_the_shipped_config_is_the_defaults():
    from pathlib import Path

    assert read_params_file(Path(__file__).parents[1] / "config" / "classify.yaml") == check_parameters({})


@pytest.mark.ros
def test_node_and_replay_eval_with_one_params_file_publish_identical_documents(tmp_path, default_model_file):
    """The robot (classify_node over DDS, fed by replaying the bag) and `robot-classify
    replay-eval`, both given the same non-default params file: document for document equal."""
    pytest.importorskip("rclpy")
    from robot_classify import cli
    from robot_classify.data.bags import COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC, write_bag
    from robot_classify.ros.replay import replay
    from robot_classify.runtime.stamps import stamp_to_ns

    from ros_harness import RosHarness
    from scene_fixtures import rendered

    params = tmp_path / "robot.yaml"
    params.write_text(NON_DEFAULT)
    bag = write_bag(tmp_path / "bag", [rendered(900_000_000 + i) for i in range(6)])
    assert cli.main(["replay-eval", "--bag", str(bag), "--params-file", str(params), "--model", default_model_file,
                     "--report", str(tmp_path / "report"), "--quiet"]) == 0
    offline = [json.loads(line) for line in (tmp_path / "report" / "object_labels.jsonl").read_text().splitlines()]
    assert len(offline) == 6 and any(o["objects"] for o in offline)
    # the file's values took effect: at most 6 objects, unknown below 0.9, and k 60 spreads the votes
    # over more classes than the default top_k's 3, which top_k 5 then shows
    objects = [o for d in offline for o in d["objects"]]
    assert all(len(d["objects"]) <= 6 for d in offline) and any(o["score"] < 0.9 for o in objects)
    assert all(o["label"] == "unknown" for o in objects if o["score"] < 0.9)
    assert max(len(o["top_k"]) for o in objects) == 5
    topics = (COLOR_TOPIC, DEPTH_TOPIC, INFO_TOPIC)
    h = RosHarness(default_model_file, topics, params_file=str(params))
    try:
        replay(bag, rate=0.1, keep_stamps=True, topics=list(topics), wait_for_subscribers=10.0)
        for doc in offline:
            st = doc["header"]["stamp"]
            live = h.wait_for(stamp_to_ns(st["sec"], st["nanosec"]), timeout=10.0)
            assert live == doc
    finally:
        h.close()


def test_offline_commands_refuse_a_bad_params_file_before_any_work(tmp_path, capsys):
    from robot_classify import cli

    bad = tmp_path / "bad.yaml"
    bad.write_text("robot_classify:\n  ros__parameters:\n    segmentation: {padding: 9.0}\n")
    for argv in (["replay-eval", "--bag", str(tmp_path / "no_bag"), "--report", str(tmp_path / "r")],
                 ["bag-to-dataset", "--bag", str(tmp_path / "no_bag"), "--out", str(tmp_path / "d")],
                 ["eval-patches", "--scenes", str(tmp_path)], ["demo", "--out", str(tmp_path / "demo")]):
        assert cli.main([*argv, "--params-file", str(bad)]) == 2, argv
        err = capsys.readouterr().err
        assert "segmentation.padding must be in [0.0, 2.0], got 9.0" in err and err.count("error:") == 1, err
    assert not (tmp_path / "r").exists() and not (tmp_path / "d").exists()


def test_unquoted_on_off_in_yaml_mean_the_choices_of_an_on_off_parameter(tmp_path):
    """YAML 1.1 (ROS params files, `-p output.vision_msgs:=on`) reads on/off as booleans."""
    f = tmp_path / "p.yaml"
    f.write_text("robot_classify:\n  ros__parameters:\n    output:\n      vision_msgs: on\n")
    assert read_params_file(f)["output.vision_msgs"] == "on"
    f.write_text("robot_classify:\n  ros__parameters:\n    output:\n      vision_msgs: off\n")
    assert read_params_file(f)["output.vision_msgs"] == "off"
    with pytest.raises(ParameterError, match="device must be a string"):  # only where on/off are choices
        check_parameters({"device": True})


@pytest.mark.ros
def test_an_integer_for_a_float_parameter_at_start_is_that_float(default_model_file):
    """`-p min_score:=1` or `min_score: 1` in a params file arrives as an integer; rclpy refused
    it for a float parameter and the node died at start (found from outside)."""
    pytest.importorskip("rclpy")
    from ros_harness import RosHarness
    from scene_fixtures import camera_k, rendered

    h = RosHarness(default_model_file, params={"min_score": 1, "tracking.gate": 1})
    try:
        s = rendered(900_000_003)
        stamp = 1_739_000_000_000_000_000
        h.publish_frame(s.color, s.depth, camera_k(s), stamp)
        doc = h.wait_for(stamp)
        assert doc["objects"] and all(o["label"] == "unknown" for o in doc["objects"]) and h.alive()
        # and they read back as the DOUBLEs they are (they had read back as INTEGERs)
        from rcl_interfaces.msg import ParameterType
        from rcl_interfaces.srv import GetParameters

        client = h.node.create_client(GetParameters, "/robot_classify/get_parameters")
        assert client.wait_for_service(timeout_sec=10)
        got = h._call(client, GetParameters.Request(names=["min_score", "tracking.gate"])).values
        assert [(v.type, v.double_value) for v in got] == [(ParameterType.PARAMETER_DOUBLE, 1.0)] * 2
    finally:
        h.close()
