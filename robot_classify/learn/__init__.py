"""Classifiers and what they are made of: distances, the exact index, kNN, linear
(SVM / softmax), features, the model file, training and tuning. No ROS, no renderer."""
