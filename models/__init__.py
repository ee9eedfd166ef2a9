"""relradar's relationship classifiers: the interface, the baseline, training and inference.

``Classifier.from_pretrained`` is the one way the rest of the product gets a classifier; it
returns the lexicon baseline or a fine-tuned model, which the stream jobs treat alike; both
also label agent turns with their treatment of the customer (``treat_envelopes``).
"""

from models.classifier import (
    SHIPPED_MODEL,
    Classifier,
    ClassifierError,
    Prediction,
    classify_envelopes,
    treat_envelopes,
)
from models.lexicon import LexiconClassifier

__all__ = [
    "SHIPPED_MODEL",
    "Classifier",
    "ClassifierError",
    "LexiconClassifier",
    "Prediction",
    "classify_envelopes",
    "treat_envelopes",
]
