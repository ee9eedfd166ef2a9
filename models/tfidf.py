"""The TF-IDF + logistic-regression baseline, and the compact form the treatment model ships.

Word 1-2-grams and character 2-5-grams, class-balanced logistic regression. ``TfidfClassifier``
is the strong classical baseline the fine-tuned model must beat by ten macro-F1 points; it is
trained on the fly by the evaluation and never shipped. ``LinearTfidf`` is the same kind of
model fitted once and reduced to arrays (the two vocabularies as JSON, idf weights, a coefficient
matrix and biases) in one ``.npz``, no pickle; it computes its features in plain Python and numpy,
text by text, so it needs no scikit-learn at inference and a text's scores never depend on its
batch. ``fit_linear_tfidf`` chooses its L2 strength and real-item weight on dev macro-F1.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.classifier import Classifier, ClassifierError, Prediction
from models.metrics import evaluate
from schemas import LABELS, Label

WORD_NGRAMS, CHAR_NGRAMS, MIN_DF = (1, 2), (2, 5), 2
# scikit-learn's default token pattern: runs of two or more word characters.
_TOKEN = re.compile(r"(?u)\b\w\w+\b")


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


def word_grams(text: str, lo: int = WORD_NGRAMS[0], hi: int = WORD_NGRAMS[1]) -> list[str]:
    """Lower-cased word n-grams, as scikit-learn's ``analyzer="word"`` makes them."""
    tokens = _TOKEN.findall(text.lower())
    return [" ".join(tokens[i : i + n]) for n in range(lo, hi + 1)
            for i in range(len(tokens) - n + 1)]  # fmt: skip


def char_grams(text: str, lo: int = CHAR_NGRAMS[0], hi: int = CHAR_NGRAMS[1]) -> list[str]:
    """Character n-grams inside space-padded words, as ``analyzer="char_wb"`` makes them."""
    grams: list[str] = []
    for word in text.lower().split():
        padded = f" {word} "
        for n in range(lo, hi + 1):
            if n >= len(padded):  # a word shorter than n counts once, whole
                grams.append(padded)
                break
            grams.extend(padded[i : i + n] for i in range(len(padded) - n + 1))
    return grams


@dataclass(frozen=True, eq=False)
class LinearTfidf:
    """Logits ``x @ coef + intercept`` over ``LABELS``, ``x`` the joined word and char blocks,
    each sublinear TF x idf, L2-normalised on its own (scikit-learn's ``FeatureUnion`` of two
    ``TfidfVectorizer``). Coefficients are float32, one row per feature.
    """

    word_vocabulary: tuple[str, ...]
    char_vocabulary: tuple[str, ...]
    idf: np.ndarray  # (features,)
    coef: np.ndarray  # (features, labels)
    intercept: np.ndarray  # (labels,)
    _index: tuple[dict[str, int], dict[str, int]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        width = len(self.word_vocabulary) + len(self.char_vocabulary)
        if self.idf.shape != (width,) or self.coef.shape != (width, len(LABELS)):
            raise ClassifierError("TF-IDF arrays do not match the vocabulary and labels")
        if self.intercept.shape != (len(LABELS),):
            raise ClassifierError("TF-IDF intercept does not match the labels")
        words = {term: i for i, term in enumerate(self.word_vocabulary)}
        chars = {term: i + len(words) for i, term in enumerate(self.char_vocabulary)}
        object.__setattr__(self, "_index", (words, chars))

    @classmethod
    def from_sklearn(cls, word: Any, char: Any, model: Any) -> LinearTfidf:
        """From fitted word and char ``TfidfVectorizer``s and a ``LogisticRegression`` whose
        classes are indices into ``LABELS``; a label it never saw gets a bias of -1e4."""
        vocabularies = [sorted(v.vocabulary_, key=v.vocabulary_.get) for v in (word, char)]
        coef = np.zeros((len(LABELS), model.coef_.shape[1]), dtype=np.float32)
        intercept = np.full(len(LABELS), -1e4, dtype=np.float32)
        coef[model.classes_] = model.coef_
        intercept[model.classes_] = model.intercept_
        idf = np.concatenate([word.idf_, char.idf_]).astype(np.float32)
        return cls(tuple(vocabularies[0]), tuple(vocabularies[1]), idf,
                   np.ascontiguousarray(coef.T), intercept)  # fmt: skip

    def features(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The nonzero columns of one text's feature row and their values."""
        columns, values = [], []
        for grams, index in zip((word_grams(text), char_grams(text)), self._index, strict=True):
            counts = Counter(k for k in map(index.get, grams) if k is not None)
            found = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
            block = (1.0 + np.log(tf)) * self.idf[found]
            columns.append(found)
            values.append(block / (np.sqrt(block @ block) or 1.0))
        return np.concatenate(columns), np.concatenate(values).astype(np.float32)

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        out = np.tile(self.intercept, (len(texts), 1))
        for row, text in enumerate(texts):
            columns, values = self.features(text)
            out[row] += values @ self.coef[columns]
        return out

    def save(self, path: Path) -> None:
        vocabulary = {"word": list(self.word_vocabulary), "char": list(self.char_vocabulary)}
        blob = json.dumps(vocabulary, ensure_ascii=False).encode("utf-8")
        np.savez_compressed(path, vocabulary=np.frombuffer(blob, dtype=np.uint8), idf=self.idf,
                            coef=self.coef, intercept=self.intercept)  # fmt: skip

    @classmethod
    def load(cls, path: Path) -> LinearTfidf:
        if not path.is_file():
            raise ClassifierError(f"{path}: TF-IDF model file is missing")
        with np.load(path, allow_pickle=False) as data:
            vocabulary = json.loads(data["vocabulary"].tobytes().decode("utf-8"))
            arrays = [data[k].astype(np.float32) for k in ("idf", "coef", "intercept")]
        return cls(tuple(vocabulary["word"]), tuple(vocabulary["char"]), *arrays)


def fit_linear_tfidf(
    texts: Sequence[str],
    y: np.ndarray,
    train: np.ndarray,
    dev: np.ndarray,
    real: np.ndarray,
    c_grid: Sequence[float] = (1.0, 3.0, 10.0, 30.0),
    real_weights: Sequence[float] = (1.0, 2.0),
    seed: int = 13,
) -> tuple[LinearTfidf, dict[str, Any]]:
    """Vectorisers fitted on the train texts; balanced logistic regression whose C and weight
    of real items are chosen on dev macro-F1 (``y`` holds indices into ``LABELS``)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    train_texts = [t for t, keep in zip(texts, train, strict=True) if keep]
    word = TfidfVectorizer(ngram_range=WORD_NGRAMS, min_df=MIN_DF, sublinear_tf=True)
    char = TfidfVectorizer(analyzer="char_wb", ngram_range=CHAR_NGRAMS, min_df=MIN_DF,
                           sublinear_tf=True)  # fmt: skip
    word.fit(train_texts)
    char.fit(train_texts)
    dev_texts = [t for t, keep in zip(texts, dev, strict=True) if keep]
    x = _joined(word, char, train_texts)
    history: list[dict[str, Any]] = []
    best: tuple[float, LinearTfidf, dict[str, Any]] | None = None
    for real_weight in real_weights:
        for c in c_grid:
            model = LogisticRegression(C=c, class_weight="balanced", max_iter=3000,
                                       random_state=seed)  # fmt: skip
            model.fit(x, y[train], sample_weight=np.where(real[train], real_weight, 1.0))
            compact = LinearTfidf.from_sklearn(word, char, model)
            pred = compact.logits(dev_texts).argmax(axis=1)
            f1 = evaluate([LABELS[i] for i in y[dev]], [LABELS[i] for i in pred]).macro_f1
            entry = {"real_weight": real_weight, "C": c, "dev_macro_f1": round(f1, 4)}
            history.append(entry)
            if best is None or f1 > best[0]:
                best = (f1, compact, entry)
    assert best is not None
    _, compact, chosen = best
    features = {"word_ngrams": list(WORD_NGRAMS), "char_ngrams": list(CHAR_NGRAMS),
                "min_df": MIN_DF, "features": int(compact.idf.shape[0])}  # fmt: skip
    return compact, {**chosen, **features, "grid": history}


def _joined(word: Any, char: Any, texts: Sequence[str]) -> Any:
    from scipy.sparse import hstack

    return hstack([word.transform(texts), char.transform(texts)]).tocsr()
