"""The shipped inference path: ONNX Runtime with int8 weights.

Texts are tokenized in one call (the Rust tokenizer batches them), sorted by length and cut
into small batches so padding stays short; each batch's word embeddings are looked up from the
base model's table (the artifact's ONNX graph starts after that lookup) and run through the
int8 encoder with as many intra-op threads as the machine has cores. Probabilities are the
softmax of the logits divided by the temperature fitted on the dev split, so they are
calibrated, not just ordered.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.artifact import ONNX_FILE, read_meta
from models.base import word_embeddings
from models.classifier import Classifier, Prediction
from models.metrics import softmax
from schemas import LABELS


def session_options(threads: int | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


class OnnxClassifier(Classifier):
    """int8 ONNX Runtime classifier over a saved relradar model directory."""

    def __init__(
        self, path: Path, session: Any, tokenizer: Any, meta: dict[str, Any], batch_size: int = 16
    ) -> None:
        self.path = path
        self.session = session
        self.tokenizer = tokenizer
        self.meta = meta
        self.batch_size = batch_size
        self.temperature = float(meta.get("temperature", 1.0))
        self.embeddings = word_embeddings()
        self._version = (
            f"{meta.get('name', 'relradar-minilm')}-{meta.get('data_hash', '')[:8]}-int8"
        )

    @classmethod
    def load(cls, path: Path, threads: int | None = None, batch_size: int = 16) -> OnnxClassifier:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        meta = read_meta(path)
        session = ort.InferenceSession(
            str(path / ONNX_FILE), session_options(threads), providers=["CPUExecutionProvider"]
        )
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(int(meta.get("max_length", 128)))
        return cls(path, session, tokenizer, meta, batch_size)

    @property
    def version(self) -> str:
        return self._version

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(list(texts))
        ids = [e.ids for e in encodings]
        order = np.argsort([len(i) for i in ids], kind="stable")
        out = np.zeros((len(texts), len(LABELS)), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            width = max(len(ids[i]) for i in idx)
            batch = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                batch[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1
            embeds = self.embeddings[batch]
            out[idx] = self.session.run(
                ["logits"], {"inputs_embeds": embeds, "attention_mask": mask}
            )[0]
        return out

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        if not texts:
            return []
        probs = softmax(self.logits(texts), self.temperature)
        return [
            Prediction(
                LABELS[int(row.argmax())], {l: float(p) for l, p in zip(LABELS, row, strict=True)}
            )
            for row in probs
        ]
