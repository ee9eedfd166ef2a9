"""The reference inference path: the fine-tuned model in plain fp32 torch.

It loads the same artifact as the ONNX path (base word embeddings plus the shipped weights)
and is what the int8 path is checked against: their labels must agree on a fixed sample, and
their macro-F1 must stay within a point. It is not the production path; it is the yardstick.
The treatment head reads its fp32 pooled embedding the way the ONNX path reads the int8 one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.artifact import load_torch_model, logits_and_pooled, read_meta
from models.classifier import Classifier, ClassifierError, Prediction
from models.metrics import softmax
from models.treatment import TreatmentHead
from schemas import LABELS


class TorchClassifier(Classifier):
    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        meta: dict[str, Any],
        treatment_head: TreatmentHead | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.meta = meta
        self.temperature = float(meta.get("temperature", 1.0))
        self.max_length = int(meta.get("max_length", 128))
        self.treatment_head = treatment_head

    @classmethod
    def load(cls, path: Path) -> TorchClassifier:
        from transformers import AutoTokenizer

        meta = read_meta(path)
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        return cls(load_torch_model(path), tokenizer, meta, TreatmentHead.load(path, meta))

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

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """The fp32 pooled embedding each text's relationship head reads (texts x hidden)."""
        import torch

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        self.model.eval()
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="pt")  # fmt: skip
                out[idx] = logits_and_pooled(self.model, **enc)[1].float().numpy()
        return out

    def predict_treatment(self, texts: Sequence[str]) -> list[Prediction]:
        if self.treatment_head is None:
            raise ClassifierError("this model directory has no treatment head")
        if not texts:
            return []
        return self.treatment_head.predictions(self.embed(texts))
