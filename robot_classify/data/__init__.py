"""Data in: datasets (PROPS, CIFAR-10, image folders, npz) through a restricted unpickler,
and ROS 2 bags read and written with rosbags."""
