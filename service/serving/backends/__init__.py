"""What executes a model: TensorFlow for frozen GraphDefs, ONNX Runtime for ONNX models (a version's
model.onnx, or a GraphDef converted with tf2onnx), and that conversion with its cache.

Each module imports its library at the top, and service/serving/loader.py imports a module only when a model
needs it: a repository of model.onnx files never imports TensorFlow, and a TensorFlow-only one never
imports ONNX Runtime.
"""
