"""The method registry: names resolve to builders, the built-in methods register themselves."""

import pytest

from s3t.config.loading import load_config
from s3t.methods.base import Method
from s3t.methods.registry import METHODS, build_method


def test_built_in_methods_are_registered_and_built_from_the_config():
    moco = build_method(load_config(["tiny"]))
    simclr = build_method(load_config(["clmr"], ["model.name=samplecnn_small"]))
    assert {"moco", "simclr"} <= set(METHODS)
    assert isinstance(moco, Method) and moco.name == "moco" and moco.stat_names == ("acc1", "uniformity")
    assert simclr.name == "simclr" and simclr.encoder.input_kind == "wave"
    # SimCLR on the spectrogram pipeline too: the same method, another encoder
    assert build_method(load_config(["tiny"], ["train.method=simclr"])).encoder.input_kind == "spectrogram"


def test_moco_refuses_a_queue_that_the_global_batch_does_not_divide():
    method = build_method(load_config(["tiny"]))
    method.check_batch(8, 100)
    with pytest.raises(ValueError, match="queue_size 64 must be a multiple of the global batch 24"):
        method.check_batch(24, 100)
