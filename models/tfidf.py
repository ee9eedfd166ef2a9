"""The TF-IDF + logistic-regression baseline, trained on the same train split as the model.

Word 1-2-grams and character 2-5-grams, class-balanced logistic regression. It is the strong
classical baseline the fine-tuned model must beat by ten macro-F1 points; it is trained on the
fly by the evaluation and never shipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from models.classifier import Classifier, Prediction
from schemas import LABELS, Label


class TfidfClassifier(Classifier):
    def __init__(self, pipeline: Any, classes: list[Label]) -> None:
        self.pipeline = pipeline
        self.classes = classes

    @classmethod
    def fit(cls, texts: Sequence[str], labels: Sequence[Label], seed: int = 13) -> TfidfClassifier:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline, make_union

        features = make_union(
            TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True),
        )
        model = LogisticRegression(max_iter=2000, C=5.0, class_weight="balanced", random_state=seed)
        pipeline = make_pipeline(features, model)
        pipeline.fit(list(texts), [label.value for label in labels])
        return cls(pipeline, [Label(c) for c in pipeline.classes_])

    @property
    def version(self) -> str:
        return "tfidf-logreg"

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        if not texts:
            return []
        probs = np.asarray(self.pipeline.predict_proba(list(texts)))
        out = []
        for row in probs:
            scores = dict.fromkeys(LABELS, 0.0)
            for label, p in zip(self.classes, row, strict=True):
                scores[label] = float(p)
            out.append(Prediction(self.classes[int(row.argmax())], scores))
        return out
