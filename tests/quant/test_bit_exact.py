"""The QAT network in eval mode equals the golden model on the exported file, bit for bit."""

import numpy as np
import pytest
from dietsnn import golden
from dietsnn.model import load_model
from dietsnn.quant.export import compare_with_golden, net_from_model, to_model


@pytest.mark.parametrize("name", ["tiny", "cifar10"])
def test_shipped_model_qat_equals_golden_on_real_images(name, cifar_test):
    model = load_model(name)
    net = net_from_model(model)
    again = to_model(net, name=name, provenance=model.provenance)
    for layer in model.layers:  # the rebuilt net has exactly the shipped parameters
        assert again.layer(layer.name) == layer
        if layer.has_weights:
            np.testing.assert_array_equal(again.weights[layer.name], model.weights[layer.name])
    n = 24 if name == "cifar10" else 64
    rep = compare_with_golden(net, model, cifar_test.images[:n])
    assert rep["exact"], rep
    # and the shipped accuracy is what the golden model measures (on a sample here)
    pred = golden.run(model, model.input.quantize(cifar_test.images[:n])).prediction
    assert np.mean(pred == cifar_test.labels[:n]) > 0.3


@pytest.mark.parametrize("lif_kernel", ["1", "0"])
@pytest.mark.parametrize("name", ["tiny", "cifar10"])
def test_training_forward_logits_equal_golden(name, lif_kernel, cifar_test, monkeypatch):
    """The forward that training and evaluation run (LIF and pooling fused when the kernel is
    on, no spikes kept) gives the golden model's integer logits exactly."""
    from dietsnn.quant.export import qat_eval

    monkeypatch.setenv("DIETSNN_LIF_KERNEL", lif_kernel)
    model = load_model(name)
    images = cifar_test.images[:32]
    logits, _ = qat_eval(net_from_model(model), images, batch=16)
    g = golden.run(model, model.input.quantize(images))
    np.testing.assert_array_equal(logits, g.logits)


@pytest.mark.parametrize("lif_kernel", ["1", "0"])
@pytest.mark.parametrize("arch", ["6C-P-8C-P-12L-10", "6C-8C-P-10", "20L-10"])
def test_biased_model_qat_equals_golden(arch, lif_kernel, monkeypatch):
    """A model with an integer bias on every layer: the QAT forward (spikes kept, and the
    fused training forward) equals the golden model bit for bit, and the export gives back
    the same biases."""
    from dietsnn.model import InputSpec
    from dietsnn.quant.export import qat_eval
    from dietsnn.topology import random_model

    monkeypatch.setenv("DIETSNN_LIF_KERNEL", lif_kernel)
    model = random_model(arch, seed=5, input_spec=InputSpec(shape=(3, 8, 8)), timesteps=4,
                         bias=True)
    net = net_from_model(model)
    again = to_model(net, name=model.name, kind="random-test", provenance=model.provenance)
    assert again.layers == model.layers
    for k, b in model.biases.items():
        assert again.biases[k].dtype == b.dtype and np.array_equal(again.biases[k], b)
    images = np.random.default_rng(2).integers(0, 256, (24, 3, 8, 8), dtype=np.uint8)
    rep = compare_with_golden(net, model, images)
    assert rep["exact"], rep
    logits, _ = qat_eval(net, images, batch=10)
    np.testing.assert_array_equal(logits, golden.run(model, model.input.quantize(images)).logits)
