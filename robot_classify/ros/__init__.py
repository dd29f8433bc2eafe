"""The rclpy shell: `classify_node` and the bag replay publisher. The only subpackage that
imports rclpy."""
