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
            "device"} <= declared


def test_config_parameters_match_the_node_declarations():
    from robot_classify.node import PARAMETERS

    cfg = yaml.safe_load((ROOT / "config" / "classify.yaml").read_text())["robot_classify"]["ros__parameters"]

    def flat(d, prefix=""):
        for k, v in d.items():
            yield from flat(v, f"{prefix}{k}.") if isinstance(v, dict) else [(prefix + k, v)]

    values = dict(flat(cfg))
    assert set(values) == set(PARAMETERS)
    for name, value in values.items():
        assert type(value) is type(PARAMETERS[name][0]), name


def test_package_xml_is_format_3_with_ament_python():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3" and root.findtext("name") == "robot_classify"
    assert root.find("export/build_type").text == "ament_python"
    deps = {e.text for e in root.findall("exec_depend")}
    assert {"rclpy", "sensor_msgs", "std_msgs", "visualization_msgs", "diagnostic_msgs", "python3-numpy",
            "python3-opencv"} <= deps
