"""Starts a PyTorch network from a committed model's ONNX graph, to fine-tune it on new data (train_threats.py
--init-onnx). The checkpoint a model was exported from is not kept in the repository; its ONNX file is, and it holds
every weight the network needs.

The exporter folded each BatchNorm into the convolution before it (eval mode), so a Conv + BatchNorm pair comes back as
the folded convolution and a BatchNorm that adds the folded bias and nothing else (running mean 0, running variance
1 - eps, scale 1). Those BatchNorms must stay in eval mode while fine-tuning (`freeze_batchnorm`): statistics of a
batch would undo the folding. Their scale and shift still learn.

A dual-energy model can start a single-energy one: the first layer's low-energy weights are folded into the high
energy's (fold_low_energy) and the normalisation keeps the high channel's part.

Convolutions are matched by order of execution (forward hooks on the torch side, graph order on the ONNX side, which
the exporter writes in execution order) and by shape; `load` then checks the network against the graph with
onnx_ref on seeded input and refuses anything not within 1e-3.
"""
import copy
import json
import os

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

import onnx_ref


def _conv_order(model, channels):
    """The network's Conv2d modules in the order a forward pass runs them, each with the BatchNorm2d that follows it
    (or None)."""
    order = []
    hooks = [m.register_forward_hook(lambda mod, i, o: order.append(mod)) for m in model.modules() if isinstance(m, nn.Conv2d)]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, channels, 64, 64))
    model.train(was_training)
    for h in hooks:
        h.remove()
    following = {}
    for m in model.modules():
        if isinstance(m, nn.Sequential):
            kids = list(m.children())
            for a, b in zip(kids, kids[1:]):
                if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
                    following[a] = b
    return [(c, following.get(c)) for c in order]


def load(model, model_dir, channels):
    """Loads `model_dir`/model.onnx into `model` (same architecture as the export). Returns the manifest
    (model.json), its input normalisation reduced to the high energy when a dual-energy model starts a single-energy
    one (see fold_low_energy)."""
    graph = onnx.load(os.path.join(model_dir, 'model.onnx'))
    manifest = json.load(open(os.path.join(model_dir, 'model.json')))
    init = {t.name: numpy_helper.to_array(t) for t in graph.graph.initializer}
    onnx_convs = [n for n in graph.graph.node if n.op_type == 'Conv']
    graph_channels = int(init[onnx_convs[0].input[1]].shape[1])
    folded = graph_channels == 2 and channels == 1
    if graph_channels != channels and not folded:
        raise ValueError('%s reads %d channels, the network %d' % (model_dir, graph_channels, channels))
    # A single-energy network is first loaded as its dual-energy twin, so the graph check covers every weight;
    # only then is the first layer folded.
    target = _dual_energy_twin(model) if folded else model
    _copy_weights(target, graph_channels, init, onnx_convs, model_dir)
    check(target, graph, graph_channels)
    if folded:
        first = _conv_order(target, graph_channels)[0][0]
        names = {m: n for n, m in target.named_modules()}
        state = target.state_dict()
        key = names[first] + '.weight'
        state[key] = torch.from_numpy(fold_low_energy(state[key].numpy(), manifest['input']['normalization']))
        model.load_state_dict(state)
        manifest['input']['normalization'] = high_energy_normalization(manifest['input']['normalization'])
    return manifest


def _dual_energy_twin(model):
    """A copy of a single-energy network whose first convolution reads two channels."""
    twin = copy.deepcopy(model)
    first = _conv_order(twin, 1)[0][0]
    first.weight = nn.Parameter(torch.zeros(first.out_channels, 2, *first.kernel_size))
    first.in_channels = 2
    return twin


def _copy_weights(model, channels, init, onnx_convs, model_dir):
    torch_convs = _conv_order(model, channels)
    if len(onnx_convs) != len(torch_convs):
        raise ValueError('%s has %d convolutions, the network %d' % (model_dir, len(onnx_convs), len(torch_convs)))
    with torch.no_grad():
        for node, (conv, bn) in zip(onnx_convs, torch_convs):
            w = init[node.input[1]]
            b = init[node.input[2]] if len(node.input) > 2 else np.zeros(w.shape[0], np.float32)
            if tuple(w.shape) != tuple(conv.weight.shape):
                raise ValueError('convolution %s: %s in the graph, %s in the network' % (node.name, w.shape, tuple(conv.weight.shape)))
            conv.weight.copy_(torch.from_numpy(np.array(w)))
            if bn is not None:
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)
                bn.weight.fill_(1.0)
                bn.bias.copy_(torch.from_numpy(np.array(b)))
            elif conv.bias is not None:
                conv.bias.copy_(torch.from_numpy(np.array(b)))
            else:
                raise ValueError('convolution %s has a bias the network cannot hold' % node.name)


def fold_low_energy(w, norm):
    """First-layer weights of a dual-energy model [out, 2, k, k] for a single-energy input [out, 1, k, k].

    A single-energy portal sees the high energy only. Where the low-energy attenuation is about r times the high one
    (r = offset_low / offset_high, the ratio of the training means), the normalised low channel is about
    (r * scale_low / scale_high) * the normalised high channel, with no constant term; so its weights fold into the
    high channel's with that factor. What is lost is exactly what single energy cannot see (the material ratio);
    fine-tuning on single-energy scans adapts the rest."""
    off, sc = norm['offset'], norm['scale']
    r = off[1] / off[0]
    return (w[:, 0:1] + w[:, 1:2] * (r * sc[1] / sc[0])).astype(np.float32)


def high_energy_normalization(norm):
    """The high-energy channel's part of a dual-energy normalisation."""
    return {'offset': norm['offset'][:1], 'scale': norm['scale'][:1], 'clampMin': norm['clampMin'], 'clampMax': norm['clampMax']}


def check(model, graph, channels):
    """The network and the graph agree on seeded input within 1e-3 (what export.py asks of an export)."""
    x = np.random.RandomState(0).normal(0, 1.5, size=(4, channels, 64, 64)).astype(np.float32)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        ours = model(torch.from_numpy(x))
    model.train(was_training)
    ours = ours[0] if isinstance(ours, tuple) else ours
    theirs = onnx_ref.run(graph, {graph.graph.input[0].name: x})[graph.graph.output[0].name]
    diff = float(np.abs(ours.numpy() - theirs).max())
    if diff > 1e-3:
        raise ValueError('the network loaded from ONNX differs from the graph by %.2e' % diff)
    return diff


def reestimate_batchnorm(model, x):
    """Gives every folded BatchNorm the statistics of its input on the tiles `x` (a normalised float tensor, e.g.
    2,048 training tiles of the new data) while keeping the network's function: running mean m and variance v from
    `x`, scale sqrt(v + eps), shift m + the folded bias, so in eval mode the output is still input + bias. In train
    mode a batch of the new data is then normalised by about the same statistics, and fine-tuning may let the
    BatchNorms learn again (train_threats.py --batchnorm train) instead of keeping the statistics of the data the
    model was first trained on. Returns the largest change of the network's output on `x` (should be ~1e-5)."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    sums = {m: [0.0, 0.0, 0] for m in bns}

    def hook(mod, inputs, _out):
        a = inputs[0].detach().double()
        s = sums[mod]
        s[0] = s[0] + a.sum(dim=(0, 2, 3))
        s[1] = s[1] + (a * a).sum(dim=(0, 2, 3))
        s[2] += a.shape[0] * a.shape[2] * a.shape[3]

    hooks = [m.register_forward_hook(hook) for m in bns]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        before = torch.cat([model(x[i:i + 256]) for i in range(0, len(x), 256)])
    for h in hooks:
        h.remove()
    with torch.no_grad():
        for m in bns:
            s0, s1, n = sums[m]
            mean = s0 / n
            var = torch.clamp(s1 / n - mean * mean, min=1e-6)
            m.running_mean.copy_(mean.float())
            m.running_var.copy_(var.float())
            m.weight.copy_(torch.sqrt(var + m.eps).float())
            m.bias.add_(mean.float())
        after = torch.cat([model(x[i:i + 256]) for i in range(0, len(x), 256)])
    model.train(was_training)
    return float((after - before).abs().max())


def freeze_batchnorm(model):
    """Puts every BatchNorm back in eval mode (call after model.train()): the folded ones must not normalise by batch
    statistics."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
