"""ros2 launch robot_classify classify.launch.py [model_path:=...] [color_topic:=...] [managed:=true] ...

Starts classify_node with the package's config/classify.yaml (or params_file:=...), remapping
its relative input topics to the camera's. Defaults fit realsense2_camera with
align_depth.enable:=true. Only launch / launch_ros features present in Humble and Jazzy.
managed:=true starts it as a lifecycle node (unconfigured): drive it with a lifecycle manager
(e.g. nav2_lifecycle_manager's node_names) or `ros2 lifecycle set /robot_classify configure`.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PythonExpression
from launch_ros.actions import Node


def generate_launch_description():
    config = os.path.join(get_package_share_directory("robot_classify"), "config")
    default_params = os.path.join(config, "classify.yaml")
    args = [
        DeclareLaunchArgument("params_file", default_value=default_params, description="node parameters (YAML)"),
        DeclareLaunchArgument("model_path", default_value="", description="model file; empty = embedded default"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace for the node and its topics"),
        DeclareLaunchArgument("color_topic", default_value="/camera/camera/color/image_raw"),
        DeclareLaunchArgument("depth_topic", default_value="/camera/camera/aligned_depth_to_color/image_raw"),
        DeclareLaunchArgument("camera_info_topic", default_value="/camera/camera/color/camera_info"),
        DeclareLaunchArgument("mask_topic", default_value="/segmentation/mask"),
        DeclareLaunchArgument("device", default_value="auto", description="auto | cpu | cuda"),
        DeclareLaunchArgument("qos_reliability", default_value="best_available",
                              description="best_available (match the camera's publishers), reliable or best_effort"),
        DeclareLaunchArgument("managed", default_value="false",
                              description="true: a lifecycle node, unconfigured until a lifecycle manager (or "
                                          "ros2 lifecycle set) configures and activates it"),
        DeclareLaunchArgument("color_transport", default_value="raw",
                              description="raw or compressed (color_topic + /compressed: JPEG or PNG)"),
        DeclareLaunchArgument("depth_transport", default_value="raw",
                              description="raw, compressedDepth (depth_topic + /compressedDepth: PNG or RVL) or "
                                          "compressed (16-bit PNG)"),
        DeclareLaunchArgument("vision_msgs", default_value="auto",
                              description="vision_msgs outputs: auto (when vision_msgs imports), on or off"),
        # The typed outputs, remappable like the inputs ("~/..." = under the node's name, the default).
        DeclareLaunchArgument("detections_topic", default_value="~/detections",
                              description="vision_msgs/Detection2DArray"),
        DeclareLaunchArgument("detections_3d_topic", default_value="~/detections_3d",
                              description="vision_msgs/Detection3DArray"),
        DeclareLaunchArgument("label_info_topic", default_value="~/label_info",
                              description="vision_msgs/LabelInfo (transient local)"),
        DeclareLaunchArgument(
            "fastdds_profile",
            default_value=EnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE",
                                              default_value=os.path.join(config, "fastdds_large_images.xml")),
            description="Fast DDS profile for the node (shared-memory segments that fit whole images); "
                        "the camera driver needs it too, see the file"),
    ]
    remaps = [
        ("color/image_raw", LaunchConfiguration("color_topic")),
        ("depth/image_raw", LaunchConfiguration("depth_topic")),
        ("color/camera_info", LaunchConfiguration("camera_info_topic")),
        ("mask/image_raw", LaunchConfiguration("mask_topic")),
        ("~/detections", LaunchConfiguration("detections_topic")),
        ("~/detections_3d", LaunchConfiguration("detections_3d_topic")),
        ("~/label_info", LaunchConfiguration("label_info_topic")),
    ]
    overrides = {"device": LaunchConfiguration("device"),
                 "qos.reliability": LaunchConfiguration("qos_reliability"),
                 "output.vision_msgs": LaunchConfiguration("vision_msgs"),
                 "managed": LaunchConfiguration("managed"),  # "true"/"false": launch_ros reads it as YAML, a bool
                 "input.transport.color": LaunchConfiguration("color_transport"),
                 "input.transport.depth": LaunchConfiguration("depth_transport")}
    env = {"FASTRTPS_DEFAULT_PROFILES_FILE": LaunchConfiguration("fastdds_profile")}
    has_model = PythonExpression(["'", LaunchConfiguration("model_path"), "' != ''"])
    node_with_model = Node(
        package="robot_classify", executable="classify_node", name="robot_classify",
        namespace=LaunchConfiguration("namespace"), output="screen", emulate_tty=True,
        parameters=[LaunchConfiguration("params_file"), overrides, {"model_path": LaunchConfiguration("model_path")}],
        remappings=remaps, additional_env=env, condition=IfCondition(has_model))
    node_default = Node(
        package="robot_classify", executable="classify_node", name="robot_classify",
        namespace=LaunchConfiguration("namespace"), output="screen", emulate_tty=True,
        parameters=[LaunchConfiguration("params_file"), overrides],
        remappings=remaps, additional_env=env, condition=UnlessCondition(has_model))
    return LaunchDescription(args + [node_with_model, node_default])
