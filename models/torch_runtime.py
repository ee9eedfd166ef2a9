"""The reference inference path: the fine-tuned model in plain fp32 torch.

It loads the same artifact as the ONNX path (base word embeddings plus the shipped weights)
and is what the int8 path is checked against: their labels must agree on a fixed sample, and
their macro-F1 must stay within a point. It is not the production path; it is the yardstick.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.artifact import load_torch_model, read_meta
from models.classifier import Classifier, Prediction
from models.metrics import softmax
from schemas import LABELS


class TorchClassifier(Classifier):
    def __init__(self, model: Any, tokenizer: Any, meta: dict[str, Any]) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.meta = meta
        self.temperature = float(meta.get("temperature", 1.0))
        self.max_length = int(meta.get("max_length", 128))

    @classmethod
    def load(cls, path: Path) -> TorchClassifier:
        from transformers import AutoTokenizer

        meta = read_meta(path)
        return cls(load_torch_model(path), AutoTokenizer.from_pretrained(str(path)), meta)

    @property
    def version(self) -> str:
        return (
            f"{self.meta.get('name', 'relradar-minilm')}-{self.meta.get('data_hash', '')[:8]}-fp32"
        )

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        from models.train import predict_logits

        return predict_logits(self.model, self.tokenizer, list(texts), self.max_length)

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
