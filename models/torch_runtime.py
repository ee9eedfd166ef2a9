"""The reference inference path: the fine-tuned model in plain fp32 torch.

It loads the same artifact as the ONNX path (base word embeddings plus the shipped weights)
and is what the int8 path is checked against: their labels must agree on a fixed sample, and
their macro-F1 must stay within a point. It is not the production path; it is the yardstick.
The treatment model's head reads its fp32 pooled embedding the way the ONNX path reads the
int8 one; its TF-IDF part reads the text the same way on both paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.artifact import load_torch_model, logits_and_pooled, read_meta
from models.classifier import Classifier, ClassifierError, Prediction, predictions_from
from models.metrics import calibrated
from models.treatment import TreatmentModel


class TorchClassifier(Classifier):
    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        meta: dict[str, Any],
        treatment: TreatmentModel | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.meta = meta
        self.temperature = float(meta.get("temperature", 1.0))
        self.problem_bias = float(meta.get("problem_bias", 0.0))
        self.max_length = int(meta.get("max_length", 128))
        self.treatment = treatment

    @classmethod
    def load(cls, path: Path) -> TorchClassifier:
        from transformers import AutoTokenizer

        meta = read_meta(path)
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        return cls(load_torch_model(path), tokenizer, meta, TreatmentModel.load(path, meta))

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
        return predictions_from(calibrated(self.logits(texts), self.temperature, self.problem_bias))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """The fp32 pooled embedding each text's relationship head reads (texts x hidden)."""
        return self._pooled_and_input(texts)[0]

    def input_mean(self, texts: Sequence[str]) -> np.ndarray:
        """The mean of each text's token embeddings (the encoder's input, averaged)."""
        return self._pooled_and_input(texts)[1]

    def _pooled_and_input(self, texts: Sequence[str], batch: int = 64) -> tuple[Any, Any]:
        import torch

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        width = self.model.config.hidden_size
        pooled = np.zeros((len(texts), width), dtype=np.float32)
        inputs = np.zeros((len(texts), width), dtype=np.float32)
        table = self.model.get_input_embeddings()
        self.model.eval()
        with torch.inference_mode():
            for start in range(0, len(order), batch):
                idx = order[start : start + batch]
                enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="pt")  # fmt: skip
                pooled[idx] = logits_and_pooled(self.model, **enc)[1].float().numpy()
                mask = enc["attention_mask"].unsqueeze(-1).float()
                summed = (table(enc["input_ids"]) * mask).sum(dim=1)
                inputs[idx] = (summed / mask.sum(dim=1)).numpy()
        return pooled, inputs

    def predict_treatment(self, texts: Sequence[str]) -> list[Prediction]:
        if self.treatment is None:
            raise ClassifierError("this model directory has no treatment model")
        return self.treatment.predictions(texts, self._pooled_and_input)
