"""float16 weights (`pinpoint convert --float16`): a frozen graph's large float32 constants stored as
float16, each behind a Cast back to float32, so the file is about half the size and the graph still
takes and gives float32.
"""

from __future__ import annotations

import numpy as np

FLOAT16_MIN_ELEMENTS = 128      # smaller float constants (biases, scalars) stay float32: nothing to gain


def halve_weights(graph_def, min_elements: int = FLOAT16_MIN_ELEMENTS):
    """A copy of graph_def whose float32 Const nodes of at least min_elements values hold float16,
    each read through a Cast to float32 under the Const's old name (so no consumer changes).
    Constants with values float16 cannot hold (beyond +-65504) stay float32.
    Returns (graph_def, the number of constants halved)."""
    import tensorflow as tf
    from tensorflow.python.framework import tensor_util

    result = tf.compat.v1.GraphDef()
    result.CopyFrom(graph_def)
    del result.node[:]
    names = {node.name for node in graph_def.node}
    halved = 0
    for node in graph_def.node:
        if node.op != "Const" or node.attr["dtype"].type != tf.float32.as_datatype_enum:
            result.node.append(node)
            continue
        values = tensor_util.MakeNdarray(node.attr["value"].tensor)
        if values.size < min_elements or not np.all(np.abs(values) <= np.finfo(np.float16).max):
            result.node.append(node)
            continue
        half_name = f"{node.name}/float16"
        while half_name in names:
            half_name += "_"
        names.add(half_name)
        half = result.node.add()
        half.name, half.op, half.device = half_name, "Const", node.device
        half.attr["dtype"].type = tf.float16.as_datatype_enum
        half.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(values.astype(np.float16)))
        cast = result.node.add()
        cast.name, cast.op, cast.device = node.name, "Cast", node.device
        cast.input.append(half_name)
        cast.input.extend(name for name in node.input if name.startswith("^"))  # keep control inputs
        cast.attr["SrcT"].type = tf.float16.as_datatype_enum
        cast.attr["DstT"].type = tf.float32.as_datatype_enum
        cast.attr["Truncate"].b = False
        halved += 1
    return result, halved
