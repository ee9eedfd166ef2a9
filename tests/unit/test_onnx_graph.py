"""The hand-written single-text graph computes what the torch model computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from schemas import LABELS


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    from transformers import BertConfig

    from models.base import base_model_dir
    from models.net import MeanPoolClassifier

    config = BertConfig.from_pretrained(base_model_dir(), num_labels=len(LABELS))
    config.num_hidden_layers, config.intermediate_size = 2, 96
    torch.manual_seed(3)
    model = MeanPoolClassifier(config).eval()
    with torch.no_grad():  # non-zero biases and norms, so a wrong wiring cannot hide
        for name, value in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name:
                value.add_(torch.randn_like(value) * 0.1)
    return model


@pytest.mark.parametrize("length", [1, 7, 40])
def test_single_text_graph_matches_the_torch_model(tiny: torch.nn.Module, length: int) -> None:
    import onnxruntime as ort

    from models.artifact import logits_and_pooled
    from models.onnx_graph import single_text_graph

    graph = single_text_graph(tiny.state_dict(), tiny.config)
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["inputs_embeds"]
    embeds = np.random.default_rng(length).normal(size=(1, length, 384)).astype(np.float32)
    logits, pooled = session.run(["logits", "pooled"], {"inputs_embeds": embeds})
    with torch.no_grad():
        want_logits, want_pooled = logits_and_pooled(
            tiny,
            inputs_embeds=torch.from_numpy(embeds),
            attention_mask=torch.ones(1, length, dtype=torch.int64),
        )
    assert logits.shape == (1, len(LABELS)) and pooled.shape == (1, 384)
    np.testing.assert_allclose(logits, want_logits.numpy(), atol=1e-4)
    np.testing.assert_allclose(pooled, want_pooled.numpy(), atol=1e-4)


def test_an_encoder_the_graph_does_not_wire_is_refused(tiny: torch.nn.Module) -> None:
    import copy

    from models.onnx_graph import single_text_graph

    config = copy.deepcopy(tiny.config)
    config.hidden_act = "relu"
    with pytest.raises(ValueError, match="hidden_act='gelu'"):
        single_text_graph(tiny.state_dict(), config)


def test_the_shipped_graph_is_the_single_text_one() -> None:
    import onnxruntime as ort

    from models import SHIPPED_MODEL
    from models.artifact import ONNX_FILE

    session = ort.InferenceSession(str(SHIPPED_MODEL / ONNX_FILE))
    assert [i.name for i in session.get_inputs()] == ["inputs_embeds"]
