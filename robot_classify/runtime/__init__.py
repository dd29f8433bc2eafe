"""What the robot runs, without ROS: message arrays to patches to labels.

Image conversion, colour/depth pairing, stream health, patch extraction, the per-frame
processor and its typed results, stamps, the node's parameters and the shipped default model. Imports `learn` (the
classifier) and nothing from `sim`, `evaluation` or `ros` (an import-linter contract).
"""
