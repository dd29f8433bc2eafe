"""The workshop's renderer: pybullet tabletop scenes, the object catalogue, rendered patch
sets and the default model's recipe. Never imported by the robot's runtime."""
