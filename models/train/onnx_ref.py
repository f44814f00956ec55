"""A tiny numpy evaluator for the ONNX operators the demo models use (Conv, Relu, Add, GlobalAveragePool, Flatten,
Gemm, Cast, Identity). Python's onnxruntime is not available on the build machine, so export.py checks the exported
files with this against PyTorch. float16 tensors are computed in float32 and rounded back to float16 after every
operator, which is close to what a GPU execution provider does.
"""
import numpy as np
import onnx
from onnx import numpy_helper

_NP = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.FLOAT16: np.float16}


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _conv(x, w, b, a):
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    if a.get('group', 1) != 1:
        raise NotImplementedError('grouped Conv')
    sh, sw = a.get('strides', [1, 1])
    dh, dw = a.get('dilations', [1, 1])
    pt, pl, pb, pr = a.get('pads', [0, 0, 0, 0])
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + pl + pr - dw * (kw - 1) - 1) // sw + 1
    cols = np.empty((n, c, kh, kw, oh, ow), dtype=np.float32)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = xp[:, :, i * dh:i * dh + sh * oh:sh, j * dw:j * dw + sw * ow:sw]
    y = np.einsum('nckluv,mckl->nmuv', cols, w, optimize=True)
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def run(model, feeds):
    """Evaluates `model` (ModelProto) on `feeds` {input name: array}; returns {output name: array}."""
    env = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    env.update(feeds)
    for node in model.graph.node:
        a = _attrs(node)
        ins = [env[i] if i else None for i in node.input]
        dtype = next((v.dtype for v in ins if v is not None and v.dtype in (np.float16, np.float32)), np.float32)
        f = [v.astype(np.float32) if v is not None and v.dtype in (np.float16, np.float32) else v for v in ins]
        op = node.op_type
        if op == 'Conv':
            y = _conv(f[0], f[1], f[2] if len(f) > 2 else None, a)
        elif op == 'Relu':
            y = np.maximum(f[0], 0)
        elif op == 'Add':
            y = f[0] + f[1]  # numpy broadcasting is ONNX's multidirectional broadcasting
        elif op == 'GlobalAveragePool':
            y = f[0].mean(axis=(2, 3), keepdims=True)
        elif op == 'Flatten':
            ax = a.get('axis', 1)
            y = f[0].reshape(int(np.prod(f[0].shape[:ax])), -1)
        elif op == 'Gemm':
            A = f[0].T if a.get('transA', 0) else f[0]
            B = f[1].T if a.get('transB', 0) else f[1]
            y = a.get('alpha', 1.0) * A @ B
            if len(f) > 2 and f[2] is not None:
                y = y + a.get('beta', 1.0) * f[2]
        elif op == 'Cast':
            env[node.output[0]] = ins[0].astype(_NP[a['to']])
            continue
        elif op == 'Identity':
            env[node.output[0]] = ins[0]
            continue
        else:
            raise NotImplementedError('operator %s' % op)
        env[node.output[0]] = y.astype(dtype)
    return {o.name: env[o.name] for o in model.graph.output}
