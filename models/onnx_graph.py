"""The shipped graph, written node by node for one text per run.

The runtime gives a dynamically quantized graph one unpadded text per run (see
``models.onnx_runtime``), so the graph needs no batch axis, no attention mask and none of the
shape arithmetic a general exporter emits for them: that bookkeeping (Shape, Gather, Concat,
Where, IsNaN ... about 30 small nodes per layer) was a quarter of the exported graph's kernel
time at tweet length. Here each layer is its tokens (sequence x hidden) through one fused Q/K/V
MatMul (the 1/sqrt(head size) scale folded into the query weights), twelve-head softmax
attention, the output projection, two LayerNorms and the GELU feed-forward; then mean pooling
and the linear head. It reads the same state dict the torch model holds (``MeanPoolClassifier``
names), takes ``inputs_embeds`` (1 x sequence x hidden) and outputs ``logits`` (1 x labels)
and ``pooled`` (1 x hidden), like the exported graph, so the quantizer and the runtime treat
both alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

OPSET = 20  # ONNX's own Gelu op (exact, erf-based, as BERT's) arrived in opset 20


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []

    def const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str | list[str], **attrs: Any) -> str:
        """Add a node; returns its (first) output's name."""
        from onnx import helper

        outputs = [output] if isinstance(output, str) else output
        self.nodes.append(helper.make_node(op_type, inputs, outputs, **attrs))
        return outputs[0]


def single_text_graph(state: Mapping[str, Any], config: Any) -> Any:
    """An fp32 ``onnx.ModelProto`` of the classifier for one unpadded text per run."""
    from onnx import TensorProto, checker, helper

    # What this graph hard-wires; another encoder would be computed wrongly, not refused later.
    for setting, wired in (("hidden_act", "gelu"), ("position_embedding_type", "absolute")):
        if getattr(config, setting, wired) != wired:
            raise ValueError(f"the single-text graph needs {setting}={wired!r}, not "
                             f"{getattr(config, setting)!r}")  # fmt: skip
    hidden, heads = int(config.hidden_size), int(config.num_attention_heads)
    layers, eps = int(config.num_hidden_layers), float(config.layer_norm_eps)
    head_size = hidden // heads

    def w(name: str) -> np.ndarray:
        value = state[name]
        array = value.detach().cpu().float().numpy() if hasattr(value, "detach") else value
        return np.asarray(array, dtype=np.float32)

    g = _Builder()
    axis0 = g.const("axis0", np.array([0], np.int64))
    e = "bert.embeddings."
    # Token type 0 everywhere, so its row is folded into the position table.
    positions = w(e + "position_embeddings.weight") + w(e + "token_type_embeddings.weight")[0]
    tokens = g.op("Squeeze", ["inputs_embeds", axis0], "tokens")
    length = g.op("Shape", [tokens], "length", start=0, end=1)
    table = g.const("positions", positions)
    pos = g.op("Slice", [table, g.const("start", np.array([0], np.int64)), length, axis0], "pos")
    summed = g.op("Add", [tokens, pos], "embedded")
    x = g.op("LayerNormalization", [summed, g.const("emb_ln_g", w(e + "LayerNorm.weight")),
             g.const("emb_ln_b", w(e + "LayerNorm.bias"))], "x_emb", epsilon=eps)  # fmt: skip
    scale = np.float32(1.0 / np.sqrt(head_size))
    for i in range(layers):
        p = f"bert.encoder.layer.{i}."
        a = p + "attention.self."
        qkv_w = np.concatenate(
            [w(a + "query.weight").T * scale, w(a + "key.weight").T, w(a + "value.weight").T], 1
        )
        qkv_b = np.concatenate(
            [w(a + "query.bias") * scale, w(a + "key.bias"), w(a + "value.bias")]
        )
        qkv = g.op("MatMul", [x, g.const(f"l{i}_qkv_w", qkv_w)], f"l{i}_qkv_mm")
        qkv = g.op("Add", [qkv, g.const(f"l{i}_qkv_b", qkv_b)], f"l{i}_qkv")
        shape = g.const(f"l{i}_heads", np.array([-1, 3, heads, head_size], np.int64))
        split = g.op("Reshape", [qkv, shape], f"l{i}_split")
        split = g.op("Transpose", [split], f"l{i}_by_head", perm=[1, 2, 0, 3])  # 3,heads,seq,size
        g.op("Split", [split], [f"l{i}_q", f"l{i}_k", f"l{i}_v"], axis=0, num_outputs=3)
        keys = g.op("Transpose", [f"l{i}_k"], f"l{i}_kt", perm=[0, 1, 3, 2])
        scores = g.op("MatMul", [f"l{i}_q", keys], f"l{i}_scores")
        weights = g.op("Softmax", [scores], f"l{i}_attn", axis=-1)
        context = g.op("MatMul", [weights, f"l{i}_v"], f"l{i}_ctx_heads")
        context = g.op("Transpose", [context], f"l{i}_ctx_t", perm=[0, 2, 1, 3])
        flat = g.const(f"l{i}_flat", np.array([-1, hidden], np.int64))
        context = g.op("Reshape", [context, flat], f"l{i}_ctx")
        x = _dense_residual_norm(g, w, context, x, p + "attention.output.", f"l{i}_attn_out", eps)
        inner = g.op("MatMul", [x, g.const(f"l{i}_ff1_w", w(p + "intermediate.dense.weight").T)],
                     f"l{i}_ff1_mm")  # fmt: skip
        inner = g.op("Add", [inner, g.const(f"l{i}_ff1_b", w(p + "intermediate.dense.bias"))],
                     f"l{i}_ff1")  # fmt: skip
        inner = g.op("Gelu", [inner], f"l{i}_gelu")
        x = _dense_residual_norm(g, w, inner, x, p + "output.", f"l{i}_ff_out", eps)
    g.op("ReduceMean", [x, axis0], "pooled", keepdims=1)
    logits = g.op("MatMul", ["pooled", g.const("head_w", w("classifier.weight").T)], "head_mm")
    g.op("Add", [logits, g.const("head_b", w("classifier.bias"))], "logits")
    labels = int(w("classifier.bias").shape[0])
    graph = helper.make_graph(
        g.nodes,
        "relradar-single-text",
        [helper.make_tensor_value_info("inputs_embeds", TensorProto.FLOAT, [1, "seq", hidden])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, labels]),
            helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [1, hidden]),
        ],
        g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 9  # what onnxruntime >= 1.18 reads
    checker.check_model(model)
    return model


def _dense_residual_norm(
    g: _Builder, w: Any, inputs: str, residual: str, prefix: str, name: str, eps: float
) -> str:
    """``LayerNorm(inputs @ W + b + residual)``: how both halves of a BERT layer end."""
    out = g.op("MatMul", [inputs, g.const(f"{name}_w", w(prefix + "dense.weight").T)], f"{name}_mm")
    out = g.op("Add", [out, g.const(f"{name}_b", w(prefix + "dense.bias"))], f"{name}_biased")
    out = g.op("Add", [out, residual], f"{name}_residual")
    gamma = g.const(f"{name}_ln_g", w(prefix + "LayerNorm.weight"))
    beta = g.const(f"{name}_ln_b", w(prefix + "LayerNorm.bias"))
    return g.op("LayerNormalization", [out, gamma, beta], name, epsilon=eps)
