"""robot_classify: RGB-D tabletop object classification for ROS 2 grasping pipelines.

The ROS-free core (datasets, features, classifiers, patch extraction, evaluation) imports
without rclpy; `robot_classify.ros.node` is the thin rclpy shell around it.
"""
__version__ = "0.9.28"  # as setup.py, package.xml and CHANGELOG.rst (test_docs checks them together)
