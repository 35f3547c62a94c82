"""The QAT network in eval mode equals the golden model on the exported file, bit for bit."""

import numpy as np
import pytest
import torch
from dietsnn import golden
from dietsnn.model import load_model
from dietsnn.quant.config import load_config
from dietsnn.quant.export import compare_with_golden, to_model
from dietsnn.quant.train import build_net


def _net_from_model(cfg_name, model):
    """A DietSNN whose integer parameters are exactly those of ``model``."""
    cfg = load_config(f"configs/{cfg_name}.toml")
    net = build_net(cfg)
    scales = model.provenance["scales"]["weights"]
    iw = j = 0
    with torch.no_grad():
        for layer in model.layers:
            if not layer.has_weights:
                continue
            s = scales[layer.name]
            net.w_scale[iw] = s
            net.weights[iw].copy_(torch.from_numpy(model.weights[layer.name].astype(np.float32))
                                  * net.w_scale[iw])
            if layer.is_lif:
                net.v_th[j] = layer.threshold * net.layer_scale(iw)
                k = layer.leak_shift
                net.leak[j] = 1.0 if k == 0 else 1.0 - 2.0 ** -k
                j += 1
            iw += 1
    return net


@pytest.mark.parametrize("name", ["tiny", "cifar10"])
def test_shipped_model_qat_equals_golden_on_real_images(name, cifar_test):
    model = load_model(name)
    net = _net_from_model(name, model)
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
