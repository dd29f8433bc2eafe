"""Package metadata and launch file checks that need no ROS install."""
import ast
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[1]


def test_launch_file_declares_the_documented_arguments():
    tree = ast.parse((ROOT / "launch" / "classify.launch.py").read_text())
    declared = {node.args[0].value for node in ast.walk(tree)
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument"}
    assert {"model_path", "params_file", "namespace", "color_topic", "depth_topic", "camera_info_topic",
            "device", "fastdds_profile"} <= declared


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


def test_launch_defaults_match_the_node_declarations():
    """The launch file passes device and qos.reliability explicitly: its defaults must be the node's."""
    from robot_classify.runtime.parameters import PARAMETERS

    tree = ast.parse((ROOT / "launch" / "classify.launch.py").read_text())
    defaults = {node.args[0].value: kw.value.value for node in ast.walk(tree)
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument"
                for kw in node.keywords if kw.arg == "default_value" and isinstance(kw.value, ast.Constant)}
    assert defaults["device"] == PARAMETERS["device"].default
    assert defaults["qos_reliability"] == PARAMETERS["qos.reliability"].default
    assert defaults["model_path"] == PARAMETERS["model_path"].default


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
    tree = ast.parse(source)
    defaults = {node.args[0].value: kw.value.value for node in ast.walk(tree)
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument"
                for kw in node.keywords if kw.arg == "default_value" and isinstance(kw.value, ast.Constant)}
    assert defaults["vision_msgs"] == PARAMETERS["output.vision_msgs"].default
    for topic in ("~/detections", "~/detections_3d", "~/label_info"):
        assert f'("{topic}", LaunchConfiguration(' in source
    assert '"opencv-python-headless>=4.6,<5"' in (ROOT / "setup.py").read_text()


def test_managed_and_transport_launch_arguments_default_to_the_nodes_and_lifecycle_msgs_is_declared():
    """managed:=true (a lifecycle node) and the input transports are launch arguments whose
    defaults are the node's; lifecycle_msgs is a dependency for ROS (package.xml) and pip ([ros])."""
    from robot_classify.runtime.parameters import PARAMETERS

    tree = ast.parse((ROOT / "launch" / "classify.launch.py").read_text())
    defaults = {node.args[0].value: kw.value.value for node in ast.walk(tree)
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument"
                for kw in node.keywords if kw.arg == "default_value" and isinstance(kw.value, ast.Constant)}
    assert defaults["managed"] == str(PARAMETERS["managed"].default).lower() == "false"
    assert defaults["color_transport"] == PARAMETERS["input.transport.color"].default
    assert defaults["depth_transport"] == PARAMETERS["input.transport.depth"].default
    deps = {e.text for e in ET.parse(ROOT / "package.xml").getroot().iter("exec_depend")}
    assert "lifecycle_msgs" in deps
    assert '"ros-jazzy-lifecycle-msgs"' in (ROOT / "setup.py").read_text()
