"""Package metadata and launch file checks that need no ROS install."""
import ast
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[1]


def _launch_arguments() -> dict[str, dict]:
    """Each DeclareLaunchArgument of the launch file: its constant default and description."""
    tree = ast.parse((ROOT / "launch" / "classify.launch.py").read_text())
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument" \
                and isinstance(node.args[0], ast.Constant):
            out[node.args[0].value] = {kw.arg: kw.value.value for kw in node.keywords if isinstance(kw.value, ast.Constant)}
    return out


def _launch_table(name: str) -> dict:
    """A table of the launch file, read without importing launch."""
    tree = ast.parse((ROOT / "launch" / "classify.launch.py").read_text())
    return ast.literal_eval(next(n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == name))


def _parameter_arguments() -> dict[str, tuple[str, str, str]]:
    """PARAMETER_ARGUMENTS: launch argument -> (node parameter, description, the node's default)."""
    return _launch_table("PARAMETER_ARGUMENTS")


def test_launch_file_declares_the_documented_arguments_each_with_a_description():
    topics = _launch_table("TOPIC_ARGUMENTS")
    declared = set(_launch_arguments()) | set(_parameter_arguments()) | set(topics)  # the tables are declared in loops
    assert {"model_path", "params_file", "namespace", "color_topic", "depth_topic", "camera_info_topic",
            "device", "workers", "fastdds_profile"} <= declared
    assert not [k for k, v in _launch_arguments().items() if not v.get("description")]  # --show-args says each
    assert all(text for _, _, text in topics.values()) and all(text for _, text, _ in _parameter_arguments().values())


def test_fastdds_profile_fits_a_frame_in_shared_memory_and_keeps_udp():
    """The profile the launch file and the README point at: a 640x480 rgb8 image (900 KB) must
    fit one shared-memory segment, and UDP must stay on for other machines."""
    ns = {"f": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}
    root = ET.parse(ROOT / "config" / "fastdds_large_images.xml").getroot()
    kinds = {d.findtext("f:transport_id", namespaces=ns): (d.findtext("f:type", namespaces=ns), d)
             for d in root.iterfind("f:transport_descriptors/f:transport_descriptor", ns)}
    participant = root.find("f:participant", ns)
    used = [t.text for t in participant.iterfind("f:rtps/f:userTransports/f:transport_id", ns)]
    assert participant.get("is_default_profile") == "true"
    assert {kinds[t][0] for t in used} == {"SHM", "UDPv4"}
    shm = next(kinds[t][1] for t in used if kinds[t][0] == "SHM")
    assert int(shm.findtext("f:segment_size", namespaces=ns)) >= 4 * 640 * 480 * 3


def test_config_parameters_match_the_node_declarations():
    from robot_classify.runtime.parameters import PARAMETERS

    cfg = yaml.safe_load((ROOT / "config" / "classify.yaml").read_text())["/**/robot_classify"]["ros__parameters"]

    def flat(d, prefix=""):
        for k, v in d.items():
            yield from flat(v, f"{prefix}{k}.") if isinstance(v, dict) else [(prefix + k, v)]

    values = dict(flat(cfg))
    assert set(values) == set(PARAMETERS)
    for name, value in values.items():
        default = PARAMETERS[name].default
        assert type(value) is type(default) and value == default, f"{name}: yaml {value!r}, node {default!r}"


def test_launch_arguments_that_set_parameters_are_passed_only_when_given():
    """Found from outside: the launch file passed device, qos.reliability, managed, the transports
    and vision_msgs at its own defaults after the params file, so a user's `qos.reliability:
    reliable` there was silently overridden. Each such argument now defaults to "" (left out) and
    names a parameter the node declares, whose default its description gives."""
    from robot_classify.runtime.parameters import PARAMETERS

    source = (ROOT / "launch" / "classify.launch.py").read_text()
    assert 'default_value=""' in source and "!= \"\"" in source
    tree = ast.parse(source)
    yaml_typed = ast.literal_eval(next(n.value for n in tree.body if isinstance(n, ast.Assign)
                                       and n.targets[0].id == "YAML_TYPED"))
    assert set(yaml_typed) == {p for p, _, _ in _parameter_arguments().values()
                               if not isinstance(PARAMETERS[p].default, str)}  # the rest stay strings
    for arg, (param, _, shown) in _parameter_arguments().items():
        assert param in PARAMETERS, param
        default = PARAMETERS[param].default
        assert shown == (str(default).lower() if isinstance(default, bool) else "the embedded default"
                         if param == "model_path" else str(default)), (arg, shown, default)


def test_the_default_model_ships_as_package_data_and_loads():
    from robot_classify.runtime.default_model import default_model_path, get_default_model

    setup_py = (ROOT / "setup.py").read_text()
    assert '"models/default.safetensors"' in setup_py
    assert default_model_path() == ROOT / "robot_classify" / "models" / "default.safetensors"
    model = get_default_model(device="cpu")
    assert model.kind == "knn" and len(model.known_class_names) == 10
    assert model.class_names[10:] == ["unknown"]  # the recipe's negatives (outlier exposure), never a label


def test_package_xml_is_format_3_with_ament_python():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3" and root.findtext("name") == "robot_classify"
    assert root.find("export/build_type").text == "ament_python"
    deps = {e.text for e in root.findall("exec_depend")}
    assert {"rclpy", "sensor_msgs", "std_msgs", "visualization_msgs", "diagnostic_msgs", "python3-numpy",
            "python3-opencv"} <= deps


def test_vision_msgs_outputs_are_declared_for_ros_and_launch():
    """package.xml names vision_msgs and cv_bridge; the launch switch defaults to the node's
    `output.vision_msgs`, and its remaps cover the three typed outputs; setup.py keeps pip's
    OpenCV below 5 (a ROS machine's cv_bridge is built against OpenCV 4)."""
    from robot_classify.runtime.parameters import PARAMETERS

    deps = {e.text for e in ET.parse(ROOT / "package.xml").getroot().findall("exec_depend")}
    assert {"vision_msgs", "cv_bridge"} <= deps
    source = (ROOT / "launch" / "classify.launch.py").read_text()
    assert _parameter_arguments()["vision_msgs"][0] == "output.vision_msgs"
    assert "output.vision_msgs" in PARAMETERS
    remapped = {topic for topic, _, _ in _launch_table("TOPIC_ARGUMENTS").values()}
    assert {"~/detections", "~/detections_3d", "~/label_info", "color/image_raw", "depth/image_raw"} <= remapped
    assert '"opencv-python-headless>=4.6,<5"' in (ROOT / "setup.py").read_text()


def test_managed_and_transport_launch_arguments_set_the_nodes_parameters_and_lifecycle_msgs_is_declared():
    """managed:=true (a lifecycle node) and the input transports are launch arguments whose
    defaults are the node's; lifecycle_msgs is a dependency for ROS (package.xml) and pip ([ros])."""
    from robot_classify.runtime.parameters import PARAMETERS

    args = _parameter_arguments()
    assert args["managed"][0] == "managed" and str(PARAMETERS["managed"].default).lower() == "false"
    assert args["color_transport"][0] == "input.transport.color" and args["depth_transport"][0] == "input.transport.depth"
    deps = {e.text for e in ET.parse(ROOT / "package.xml").getroot().iter("exec_depend")}
    assert "lifecycle_msgs" in deps
    assert '"ros-jazzy-lifecycle-msgs"' in (ROOT / "setup.py").read_text()


def test_the_launch_file_gives_the_node_only_what_was_given_with_its_type(tmp_path):
    """Runs the launch file's own function where launch and launch_ros import (a ROS install;
    skipped on a pip install, which has neither)."""
    import importlib.util

    for module in ("launch", "launch_ros"):
        if importlib.util.find_spec(module) is None:
            import pytest

            pytest.skip(f"{module} is not installed (a ROS 2 install has it)")
    from launch import LaunchContext
    from launch_ros.utilities import evaluate_parameters

    spec = importlib.util.spec_from_file_location("classify_launch", ROOT / "launch" / "classify.launch.py")
    launch_file = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launch_file)
    params = tmp_path / "params.yaml"
    params.write_text("/**/robot_classify:\n  ros__parameters:\n    workers: 2\n")

    def evaluated(**given):
        context = LaunchContext()
        values = {"params_file": str(params), "namespace": "", "fastdds_profile": "x.xml", "color_topic": "c",
                  "depth_topic": "d", "camera_info_topic": "i", "mask_topic": "m", "detections_topic": "~/detections",
                  "detections_3d_topic": "~/detections_3d", "label_info_topic": "~/label_info",
                  **{arg: "" for arg in launch_file.PARAMETER_ARGUMENTS}, **given}
        context.launch_configurations.update(values)
        node = launch_file._node(context)[0]
        return [p for p in evaluate_parameters(context, node._Node__parameters) if isinstance(p, dict)]

    assert evaluated() == []  # nothing given: the params file alone
    (given,) = evaluated(workers="2", managed="true", model_path="2024", vision_msgs="on", device="cpu")
    assert given == {"workers": 2, "managed": True, "model_path": "2024", "output.vision_msgs": "on", "device": "cpu"}
