"""What executes a model: TensorFlow for frozen GraphDefs and SavedModels, ONNX Runtime for ONNX models
(a version's model.onnx, a GraphDef converted with tf2onnx, a SavedModel's signatures converted whole),
and those conversions with their cache.

Each module imports its library at the top, and service/serving/loader.py imports a module only when a model
needs it: a repository of model.onnx files never imports TensorFlow, and a TensorFlow-only one never
imports ONNX Runtime.
"""
