"""ros2 launch robot_classify classify.launch.py [model_path:=...] [color_topic:=...] [managed:=true] ...

Starts classify_node with the package's config/classify.yaml (or params_file:=...), remapping
its relative input topics to the camera's. Defaults fit realsense2_camera with
align_depth.enable:=true. Only launch / launch_ros features present in Humble and Jazzy.
managed:=true starts it as a lifecycle node (unconfigured): drive it with a lifecycle manager
(e.g. nav2_lifecycle_manager's node_names) or `ros2 lifecycle set /robot_classify configure`.

The arguments that set a parameter (device, workers, managed, ...) are passed only when given:
left out, the params file's value holds (a user's `device: cuda` had been overridden by the
argument's default, found from outside), and without one there the node's default.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import EnvironmentVariable, LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

# launch argument -> the node's topic it remaps (relative names: remap them; "~/..." = under the
# node's name), its default (realsense2_camera's names with align_depth.enable:=true) and what it is.
TOPIC_ARGUMENTS = {
    "color_topic": ("color/image_raw", "/camera/camera/color/image_raw",
                    "colour image (rgb8, bgr8, rgba8, bgra8 or mono8; its compressed transport beside it)"),
    "depth_topic": ("depth/image_raw", "/camera/camera/aligned_depth_to_color/image_raw",
                    "depth aligned to the colour image (16UC1 mm or 32FC1 m)"),
    "camera_info_topic": ("color/camera_info", "/camera/camera/color/camera_info", "the colour camera's intrinsics"),
    "mask_topic": ("mask/image_raw", "/segmentation/mask",
                   "instance ids of a learned segmenter (segmentation.mode: mask)"),
    "detections_topic": ("~/detections", "~/detections", "vision_msgs/Detection2DArray"),
    "detections_3d_topic": ("~/detections_3d", "~/detections_3d", "vision_msgs/Detection3DArray"),
    "label_info_topic": ("~/label_info", "~/label_info", "vision_msgs/LabelInfo (transient local)"),
}

# launch argument -> the node parameter it sets, what it says in --show-args, and the node's
# default. Each defaults to "" (not given): the params file's value, else the node's default.
PARAMETER_ARGUMENTS = {
    "model_path": ("model_path", "model file", "the embedded default"),
    "device": ("device", "auto, cpu or cuda", "auto"),
    "workers": ("workers", "frames processed at once: 2 for 1280x720 at 30 Hz on 2 cores", "1"),
    "qos_reliability": ("qos.reliability",
                        "best_available (match the camera's publishers), reliable or best_effort", "best_available"),
    "managed": ("managed", "true: a lifecycle node, unconfigured until a lifecycle manager (or ros2 lifecycle "
                           "set) configures and activates it", "false"),
    "color_transport": ("input.transport.color", "raw or compressed (color_topic + /compressed: JPEG or PNG)", "raw"),
    "depth_transport": ("input.transport.depth", "raw, compressedDepth (depth_topic + /compressedDepth: PNG or RVL) "
                                                 "or compressed (16-bit PNG)", "raw"),
    "vision_msgs": ("output.vision_msgs", "vision_msgs outputs: auto (when vision_msgs imports), on or off", "auto"),
}
YAML_TYPED = ("workers", "managed")  # the parameters above that are no strings


def _node(context):
    """One classify_node, given only the parameter arguments that were set (a Node's later
    parameters override its params file's, so a default passed here would hide the file's)."""
    params_file = LaunchConfiguration("params_file").perform(context)
    if not os.path.isfile(params_file):  # launch_ros would only say so, and start the node without it
        raise RuntimeError(f"params_file:={params_file} is not a file")
    # launch_ros reads a substitution's value as YAML (managed:=true a bool, workers:=2 an int);
    # string parameters are kept strings (model_path:=2024 a file name, vision_msgs:=on a word).
    given = {param: LaunchConfiguration(arg) if param in YAML_TYPED else ParameterValue(LaunchConfiguration(arg),
                                                                                         value_type=str)
             for arg, (param, _, _) in PARAMETER_ARGUMENTS.items() if LaunchConfiguration(arg).perform(context) != ""}
    remaps = [(topic, LaunchConfiguration(arg)) for arg, (topic, _, _) in TOPIC_ARGUMENTS.items()]
    return [Node(
        package="robot_classify", executable="classify_node", name="robot_classify",
        namespace=LaunchConfiguration("namespace"), output="screen", emulate_tty=True,
        parameters=[LaunchConfiguration("params_file")] + ([given] if given else []),
        remappings=remaps, additional_env={"FASTRTPS_DEFAULT_PROFILES_FILE": LaunchConfiguration("fastdds_profile")})]


def generate_launch_description():
    config = os.path.join(get_package_share_directory("robot_classify"), "config")
    args = [
        DeclareLaunchArgument("params_file", default_value=os.path.join(config, "classify.yaml"),
                              description="node parameters (YAML; the shipped file's /**/robot_classify: section applies in any "
                                          "namespace, doc/parameters.md)"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace for the node and its topics"),
        *[DeclareLaunchArgument(arg, default_value=default, description=text)
          for arg, (_, default, text) in TOPIC_ARGUMENTS.items()],
        *[DeclareLaunchArgument(arg, default_value="", description=f"{text}. Sets {param}; left out, the params "
                                                                   f"file's value holds (the node's default: {default})")
          for arg, (param, text, default) in PARAMETER_ARGUMENTS.items()],
        DeclareLaunchArgument(
            "fastdds_profile",
            default_value=EnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE",
                                              default_value=os.path.join(config, "fastdds_large_images.xml")),
            description="Fast DDS profile for the node (shared-memory segments that fit whole images): "
                        "$FASTRTPS_DEFAULT_PROFILES_FILE where set, else share/robot_classify/config/"
                        "fastdds_large_images.xml; the camera driver needs it too, see the file"),
    ]
    return LaunchDescription(args + [OpaqueFunction(function=_node)])
