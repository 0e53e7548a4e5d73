"""The theme (topic) model's parts: the PyTorch-free weights reader, the reviewed ImageNet -> topic map,
and the committed graph's shape, size, labels and licence notice."""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from service.tools.train import lite0, topics

REPO = Path(__file__).resolve().parents[1]


def legacy_checkpoint(arrays: dict[str, np.ndarray]) -> bytes:
    """The bytes torch.save(..., _use_new_zipfile_serialization=False) writes for a state dict of
    float32 tensors, made without PyTorch: pickles that name torch's classes, then each storage's
    element count and raw bytes. Tensors are views (an offset and strides) into shared storages, as
    in a real checkpoint."""
    fake = types.ModuleType("torch")
    fake_utils = types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while writing")

    FloatStorage.__module__, _rebuild_tensor_v2.__module__ = "torch", "torch._utils"
    FloatStorage.__qualname__, _rebuild_tensor_v2.__qualname__ = "FloatStorage", "_rebuild_tensor_v2"
    fake.FloatStorage, fake_utils._rebuild_tensor_v2 = FloatStorage, _rebuild_tensor_v2

    class Tensor:
        def __init__(self, key, offset, shape, stride):
            self.args = (key, offset, shape, stride)

        def __reduce__(self):
            key, offset, shape, stride = self.args
            return _rebuild_tensor_v2, (StorageRef(key), offset, shape, stride, False, collections.OrderedDict())

    class StorageRef:
        def __init__(self, key):
            self.key = key

    storages, state = {}, collections.OrderedDict()
    for number, (name, array) in enumerate(arrays.items()):
        # each tensor is stored column-major after three unused elements, so offsets and strides matter
        storages[str(number)] = np.concatenate([np.zeros(3, np.float32), array.ravel(order="F")])
        strides = tuple(int(np.prod(array.shape[:axis])) for axis in range(array.ndim))
        state[name] = Tensor(str(number), 3, tuple(array.shape), strides)

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, StorageRef):
                return ("storage", FloatStorage, obj.key, "cpu", storages[obj.key].size)
            return None

    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = fake, fake_utils
    try:
        out = io.BytesIO()
        for header in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}):
            pickle.dump(header, out, protocol=2)
        Pickler(out, protocol=2).dump(state)
        pickle.dump(list(storages), out, protocol=2)
        for storage in storages.values():
            out.write(struct.pack("<q", storage.size))
            out.write(storage.astype("<f4").tobytes())
        return out.getvalue()
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def test_a_legacy_pytorch_checkpoint_is_read_without_pytorch():
    rng = np.random.default_rng(0)
    arrays = {"_conv_stem.weight": rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
              "_bn0.bias": rng.normal(size=(4,)).astype(np.float32),
              "_fc.weight": rng.normal(size=(5, 7)).astype(np.float32)}
    read = lite0.read_state_dict(legacy_checkpoint(arrays))
    assert list(read) == list(arrays)
    for name, array in arrays.items():
        np.testing.assert_array_equal(read[name], array)


def test_a_checkpoint_that_names_any_other_class_is_refused_before_it_runs():
    class Shell:
        def __reduce__(self):
            return os.system, ("echo pwned",)

    out = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {}):
        pickle.dump(header, out, protocol=2)
    pickle.dump({"weight": Shell()}, out, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="unexpected class"):
        lite0.read_state_dict(out.getvalue())


def test_every_imagenet_class_belongs_to_a_topic_and_every_topic_has_classes():
    classes = topics.class_topics()
    assert len(classes) == 1000 and len({synset for synset, _, _ in classes}) == 1000
    matrix = topics.topic_matrix()
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)  # a softmax stays a distribution
    assert (matrix.sum(axis=0) > 0).all(), [t for t, n in zip(topics.TOPIC_LABELS, matrix.sum(axis=0)) if not n]
    assert 15 <= len(topics.TOPIC_LABELS) <= 25
    assert {"Men's Fashion", "Gardening", "Architecture"} <= set(topics.TOPIC_LABELS)
    named = {name: found for _, name, found in classes}
    assert named["suit"] == ("Men's Fashion",) and named["daisy"] == ("Gardening",)
    assert named["church"] == ("Architecture",) and named["espresso"] == ("Food & Drink",)


def test_the_committed_theme_model_answers_topics_from_a_graph_under_20_mb():
    from service.tools.train import run_frozen

    spec = run_frozen.spec(REPO / "models", REPO / "labels", "theme")
    assert spec.graph_path.stat().st_size < 20_000_000
    assert tuple(spec.labels) == topics.TOPIC_LABELS
    assert (spec.input.height, spec.input.width) == (224, 224)
    notice = (REPO / "models" / "theme" / "NOTICE").read_text()
    assert "Apache License, Version 2.0" in notice and "ImageNet" in notice
    with run_frozen.FrozenModel(REPO / "models", REPO / "labels", "theme") as model:
        scores = model.probabilities(np.full((2, 224, 224, 3), 128, np.uint8))
    assert scores.shape == (2, len(topics.TOPIC_LABELS))
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-4)
