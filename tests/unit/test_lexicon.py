"""The lexicon baseline: codebook signals, precedence and well-formed probabilities."""

from __future__ import annotations

import pytest

from models import Classifier, LexiconClassifier, classify_envelopes
from schemas import LABELS, Envelope, Label

CASES = [
    ("Boycott @AcmeAir, worst airline ever", Label.enemies),
    ("I used to love you guys, after 10 years I'm done", Label.ex_friends),
    ("love you but your app is driving me mad, why do I keep coming back", Label.love_hate),
    ("stuck with @CableCo, they are the only option in my town", Label.captive),
    ("honestly addicted to these, can't live without my morning fix", Label.dependency),
    ("20 years loyal, never switching", Label.marriage),
    ("you always have my back, I trust you", Label.best_friends),
    ("just tried the new drop, had to grab it", Label.fling),
    ("as a platinum member I expect an upgrade, I demand better", Label.master_servant),
    ("feature request: you should add dark mode", Label.business_partner),
    ("@AcmeAir how do I get a refund for my delayed flight?", Label.basic_exchange),
    ("We're hiring! Apply now", Label.none),
]


@pytest.mark.parametrize(("text", "label"), CASES)
def test_codebook_signals(text: str, label: Label) -> None:
    assert LexiconClassifier().predict([text])[0].label is label


def test_problem_wins_over_praise() -> None:
    [p] = LexiconClassifier().predict(["I love the crew but never again, worst delay ever"])
    assert p.label is Label.enemies


def test_probabilities_cover_every_label_and_favour_the_label() -> None:
    for prediction in LexiconClassifier().predict([t for t, _ in CASES]):
        assert set(prediction.scores) == set(LABELS)
        assert abs(sum(prediction.scores.values()) - 1) < 1e-9
        assert max(prediction.scores, key=prediction.scores.__getitem__) is prediction.label


def test_from_pretrained_names() -> None:
    assert isinstance(Classifier.from_pretrained("lexicon"), LexiconClassifier)
    with pytest.raises(Exception, match="no relradar model"):
        Classifier.from_pretrained("/nonexistent/model")


def test_brand_replies_are_none_whatever_they_say() -> None:
    def env(role: str) -> Envelope:
        return Envelope.model_validate(
            {
                "id": role,
                "source": "t",
                "kind": "social_post",
                "brand": "Acme",
                "role": role,
                "text": "worst experience ever, boycott",
                "created_at": "2024-01-01T00:00:00Z",
            }
        )

    customer, agent = classify_envelopes(LexiconClassifier(), [env("customer"), env("agent")])
    assert customer.label is Label.enemies
    assert agent.label is Label.none and agent.scores[Label.none] == 1.0
