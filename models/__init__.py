"""relradar's relationship classifiers: the interface, the baseline, training and inference.

``Classifier.from_pretrained`` is the one way the rest of the product gets a classifier; it
returns the lexicon baseline or a fine-tuned model, which the stream jobs treat alike.
"""

from models.classifier import (
    SHIPPED_MODEL,
    Classifier,
    ClassifierError,
    Prediction,
    classify_envelopes,
)
from models.lexicon import LexiconClassifier

__all__ = [
    "SHIPPED_MODEL",
    "Classifier",
    "ClassifierError",
    "LexiconClassifier",
    "Prediction",
    "classify_envelopes",
]
