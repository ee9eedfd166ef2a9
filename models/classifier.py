"""The classifier interface every relationship classifier implements.

A classifier turns texts into a ``Prediction`` each: the primary label and a probability per
label. The stream jobs only see this interface, so the lexicon baseline and the fine-tuned
model are interchangeable. ``Classifier.from_pretrained`` loads either by name or path, and
``classify_envelopes`` applies the codebook rules that depend on more than the text (rule 6:
a brand's own replies are ``none``). Brand replies also get a label of their own, their
*treatment* of the customer (``docs/treatment.md``): ``predict_treatment`` and
``treat_envelopes``.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from schemas import LABELS, Envelope, Label, Role

log = logging.getLogger(__name__)
SHIPPED_MODEL = Path(__file__).parent / "artifacts" / "relradar-minilm"
ARTIFACT_FILE = "relradar_model.json"


@dataclass(frozen=True)
class Prediction:
    """One text's verdict: the primary label and a probability per label (summing to 1)."""

    label: Label
    scores: dict[Label, float]


class ClassifierError(Exception):
    """A classifier could not be loaded or run."""


class Classifier(ABC):
    """Relationship classifier: ``predict(texts)`` gives one ``Prediction`` per text."""

    labels: tuple[Label, ...] = LABELS

    @property
    @abstractmethod
    def version(self) -> str:
        """A name that identifies the weights or rules, stored with every classified row."""

    @abstractmethod
    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Classify texts; the result has the same length and order as ``texts``."""

    def predict_treatment(self, texts: Sequence[str]) -> list[Prediction]:
        """How each agent turn treats the customer (``docs/treatment.md``), in the same labels.

        Classifiers without a treatment head raise ``ClassifierError``.
        """
        raise ClassifierError(f"{self.version} has no treatment head")

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path = "default") -> Classifier:
        """Load ``'lexicon'``, ``'default'`` (the shipped model) or a saved model directory."""
        if str(name_or_path) == "lexicon":
            from models.lexicon import LexiconClassifier

            return LexiconClassifier()
        path = SHIPPED_MODEL if str(name_or_path) == "default" else Path(name_or_path)
        meta_file = path / ARTIFACT_FILE
        if not meta_file.is_file():
            if str(name_or_path) == "default":
                # A checkout without the trained model (deleted, or before `make train`) still
                # runs on the baseline, but says so: the numbers would be the lexicon's.
                from models.lexicon import LexiconClassifier

                log.warning("no shipped model at %s; using the lexicon baseline", path)
                return LexiconClassifier()
            raise ClassifierError(f"no relradar model at {path} (missing {ARTIFACT_FILE})")
        meta = json.loads(meta_file.read_text())
        runtime = meta.get("runtime", "onnx")
        if runtime == "onnx":
            from models.onnx_runtime import OnnxClassifier

            return OnnxClassifier.load(path)
        if runtime == "torch":
            from models.torch_runtime import TorchClassifier

            return TorchClassifier.load(path)
        raise ClassifierError(f"unknown runtime {runtime!r} in {meta_file}")


def predictions_from(rows: Iterable[Sequence[float]]) -> list[Prediction]:
    """One prediction per row of probabilities over ``LABELS``: the likeliest label, and all."""
    out = []
    for row in rows:
        values = [float(v) for v in row]
        out.append(
            Prediction(LABELS[values.index(max(values))], dict(zip(LABELS, values, strict=True)))
        )
    return out


def probabilities(raw: dict[Label, float]) -> dict[Label, float]:
    """Normalise non-negative scores over every label so they sum to 1."""
    total = sum(raw.values())
    if total <= 0:
        return {label: (1.0 if label is Label.none else 0.0) for label in LABELS}
    return {label: raw.get(label, 0.0) / total for label in LABELS}


AGENT_PREDICTION = Prediction(
    Label.none, {label: (1.0 if label is Label.none else 0.0) for label in LABELS}
)


def classify_envelopes(classifier: Classifier, envelopes: Sequence[Envelope]) -> list[Prediction]:
    """Classify envelopes, applying codebook rule 6 (brand replies are ``none``)."""
    customer = [i for i, env in enumerate(envelopes) if env.role is not Role.agent]
    predictions = classifier.predict([envelopes[i].text for i in customer])
    result = [AGENT_PREDICTION] * len(envelopes)
    for i, prediction in zip(customer, predictions, strict=True):
        result[i] = prediction
    return result


def treat_envelopes(
    classifier: Classifier, envelopes: Sequence[Envelope]
) -> list[Prediction | None]:
    """The treatment of every agent turn; ``None`` for customer messages (they have none)."""
    agent = [i for i, env in enumerate(envelopes) if env.role is Role.agent]
    predictions = classifier.predict_treatment([envelopes[i].text for i in agent]) if agent else []
    result: list[Prediction | None] = [None] * len(envelopes)
    for i, prediction in zip(agent, predictions, strict=True):
        result[i] = prediction
    return result
