"""Pinpoint: classify the region around a point of an image with frozen TensorFlow graphs."""

__version__ = "0.1.0"
