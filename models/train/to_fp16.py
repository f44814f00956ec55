"""fp16 variant of an ONNX model with float32 inputs and outputs, using only the `onnx` package.

Every float32 initializer (and Constant tensor) becomes float16; a Cast to float16 is inserted after each float32
graph input and a Cast back to float32 before each float32 graph output, so callers feed and read float32 exactly
as with the fp32 model (model.json describes both files with one input/output contract). Intermediate value_info is
dropped and re-inferred; the result is checked with onnx.checker and strict shape inference.

  /usr/bin/python3 to_fp16.py model.onnx model.fp16.onnx
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _to_fp16_tensor(t):
    if t.data_type != TensorProto.FLOAT:
        return t
    a = numpy_helper.to_array(t)
    if np.abs(a).max(initial=0) > 65504:
        raise ValueError('tensor %s does not fit float16' % t.name)
    return numpy_helper.from_array(a.astype(np.float16), t.name)


def convert(model):
    """Returns a new ModelProto: float16 weights and compute, float32 graph inputs and outputs."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    for i, t in enumerate(g.initializer):
        g.initializer[i].CopyFrom(_to_fp16_tensor(t))
    for node in g.node:
        if node.op_type == 'Constant':
            for a in node.attribute:
                if a.name == 'value' and a.t.data_type == TensorProto.FLOAT:
                    a.t.CopyFrom(_to_fp16_tensor(a.t))
        if node.op_type == 'Cast':
            for a in node.attribute:
                if a.name == 'to' and a.i == TensorProto.FLOAT:
                    a.i = TensorProto.FLOAT16

    init_names = {t.name for t in g.initializer}
    head, tail = [], []
    for inp in g.input:
        if inp.name in init_names or inp.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        half = inp.name + '_fp16'
        for node in g.node:
            for j, x in enumerate(node.input):
                if x == inp.name:
                    node.input[j] = half
        head.append(helper.make_node('Cast', [inp.name], [half], to=TensorProto.FLOAT16, name='cast_in_' + inp.name))
    for out in g.output:
        if out.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        half = out.name + '_fp16'
        for node in g.node:
            for j, x in enumerate(node.output):
                if x == out.name:
                    node.output[j] = half
            for j, x in enumerate(node.input):
                if x == out.name:
                    node.input[j] = half
        tail.append(helper.make_node('Cast', [half], [out.name], to=TensorProto.FLOAT, name='cast_out_' + out.name))
    nodes = head + list(g.node) + tail
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]
    m = onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
    onnx.checker.check_model(m, full_check=True)
    return m


def main():
    if len(sys.argv) != 3:
        sys.exit('usage: to_fp16.py IN.onnx OUT.onnx')
    model = onnx.load(sys.argv[1])
    onnx.save(convert(model), sys.argv[2])


if __name__ == '__main__':
    main()
