"""The lexicon baseline: the codebook's signal phrases as weighted patterns.

It implements ``Classifier`` from the codebook alone, with no training: each label has a list
of weighted regular expressions drawn from the codebook's "typical signals" (plus their
common spellings), the labels whose evidence passes a threshold are resolved with the
codebook's precedence rule, and a message with no signal is a ``basic_exchange`` when it reads
like a customer talking to a brand, else ``none``. It is the baseline the fine-tuned model is
measured against, so it stays deliberately simple and transparent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from models.classifier import Classifier, Prediction, probabilities
from schemas import LABELS, Label, resolve

W = float
SIGNALS: dict[Label, list[tuple[str, W]]] = {
    Label.fling: [
        (r"\bjust (tried|got|bought|grabbed|ordered)\b", 1.0),
        (r"\bnew (drop|release|flavou?r|menu)\b", 1.0),
        (r"\bhad to (grab|get|try)\b", 1.0),
        (r"\bfor now\b", 0.6),
        (r"\btrying (out|it)\b", 1.0),
        (r"\bfirst time\b", 0.8),
        (r"\bgave .{0,20} a (try|shot)\b", 1.0),
        (r"\blimited edition\b", 0.8),
    ],
    Label.basic_exchange: [
        (r"\brefund", 0.7),
        (r"\border\b", 0.5),
        (r"\bdelay(ed)?\b", 0.6),
        (r"\barriv", 0.5),
        (r"\bhow (do|can) i\b", 0.8),
        (r"\bprice", 0.5),
        (r"\bcancel", 0.5),
        (r"\bstatus\b", 0.5),
        (r"\bbag(gage)?\b", 0.4),
        (r"\bflight\b", 0.3),
        (r"\bwhen will\b", 0.6),
        (r"\bhelp\b", 0.3),
    ],
    Label.master_servant: [
        (
            r"\bas an? (gold|platinum|silver|diamond|premium|elite|vip|loyal) (member|customer)\b",
            1.5,
        ),
        (r"\bi expect\b", 1.0),
        (r"\bunacceptable for\b", 1.0),
        (r"\bi demand\b", 1.5),
        (r"\bsomeone like me\b", 1.2),
        (r"\bdo you know who i am\b", 1.5),
        (r"\bi deserve\b", 1.0),
        (r"\b(platinum|gold|diamond|first class) (status|member)\b", 0.8),
    ],
    Label.business_partner: [
        (r"\bsuggest", 1.2),
        (r"\byou should (add|make|offer|consider)\b", 1.2),
        (r"\bfeature request\b", 1.5),
        (r"\bbeta test", 1.2),
        (r"\bhere'?s a bug\b", 1.5),
        (r"\bbug\b", 0.8),
        (r"\bwould be (nice|great|cool) if\b", 1.0),
        (r"\bidea\b", 0.8),
        (r"\bfeedback\b", 0.6),
        (r"\bplease add\b", 1.0),
        (r"\bwhy not (add|offer)\b", 1.0),
    ],
    Label.buddies: [
        (r"\balways fun\b", 1.2),
        (r"\byou guys\b", 0.6),
        (r"\bsee (you|ya) next\b", 1.2),
        (r"\b(lol|haha+|lmao)\b", 0.6),
        (r"\bthanks?( you)?\b", 0.5),
        (r"\bawesome\b", 0.7),
        (r"\bgreat\b", 0.4),
        (r"\bcheers\b", 0.7),
        (r"\bnice\b", 0.4),
        (r"\bcool\b", 0.4),
    ],
    Label.best_friends: [
        (r"\b(always|really) ha(ve|d) my back\b", 1.5),
        (r"\bi trust\b", 1.2),
        (r"\bthank(s| you) for caring\b", 1.5),
        (r"\bfelt heard\b", 1.5),
        (r"\btook (such )?(good )?care of\b", 1.2),
        (r"\bwent above and beyond\b", 1.2),
        (r"\bthere for me\b", 1.2),
        (r"\bcare about (your )?customers\b", 1.0),
    ],
    Label.marriage: [
        (r"\blove\b", 0.9),
        (r"\bloyal", 1.0),
        (r"\b\d+\s*(years|yrs)\b", 0.6),
        (r"\bnever switching\b", 1.5),
        (r"\bonly (ever )?(buy|fly|use)\b", 1.2),
        (r"\bfor life\b", 1.0),
        (r"\bfavou?rite\b", 0.8),
        (r"\bforever\b", 0.6),
    ],
    Label.dependency: [
        (r"\baddict", 1.5),
        (r"\bobsess", 1.2),
        (r"\bcan'?t live without\b", 1.5),
        (r"\bneed my (fix|daily)\b", 1.5),
        (r"\bcan'?t (function|survive|start my day) without\b", 1.5),
    ],
    Label.captive: [
        (r"\bonly option\b", 1.5),
        (r"\blocked in(to)?\b", 1.5),
        (r"\bno (other )?choice\b", 1.2),
        (r"\bcan'?t leave\b", 1.2),
        (r"\bhostage\b", 1.5),
        (r"\bstuck with\b", 1.2),
        (r"\bcontract\b", 0.5),
        (r"\bmonopoly\b", 1.2),
        (r"\bno alternative\b", 1.2),
    ],
    Label.love_hate: [
        (r"\blove you but\b", 1.8),
        (r"\bcan'?t quit you\b", 1.8),
        (r"\bwhy do i keep coming back\b", 1.8),
        (r"\blove.{0,40}\bhate\b", 1.5),
        (r"\bhate.{0,40}\blove\b", 1.5),
        (r"\blove-?hate\b", 1.8),
    ],
    Label.ex_friends: [
        (r"\bused to (love|like|be)\b", 1.5),
        (r"\bafter \d+\s*(years|yrs)\b", 1.0),
        (r"\bswitching to\b", 1.2),
        (r"\bnot anymore\b", 1.2),
        (r"\bno longer\b", 0.8),
        (r"\bi'?m done\b", 0.9),
        (r"\bonce (was|were)\b", 0.8),
        (r"\bgoodbye\b", 0.8),
    ],
    Label.enemies: [
        (r"\bworst\b", 1.2),
        (r"\bnever again\b", 1.5),
        (r"\bboycott", 1.8),
        (r"\bi hate\b", 1.5),
        (r"\bavoid\b", 1.0),
        (r"\bscam", 1.2),
        (r"\bterrible\b", 0.8),
        (r"\bdisgust", 1.0),
        (r"\bawful\b", 0.8),
        (r"\bpathetic\b", 1.0),
        (r"\bjoke\b", 0.6),
        (r"\bsucks?\b", 1.0),
    ],
    Label.none: [
        (r"^\s*(rt\b|https?://\S+\s*$)", 1.5),
        (r"\b(we'?re hiring|job opening|apply now)\b", 1.5),
        (r"\b\d+% off\b", 1.0),
        (r"\b(shares|stock|earnings|quarter)\b", 0.8),
    ],
}

THRESHOLD = 1.0
_COMPILED = {
    label: [(re.compile(p, re.IGNORECASE), w) for p, w in patterns]
    for label, patterns in SIGNALS.items()
}
_DIRECTED = re.compile(r"@\w+|\?|\b(you|your|my|i|me)\b", re.IGNORECASE)


class LexiconClassifier(Classifier):
    """Weighted codebook phrases, resolved with the precedence rule."""

    @property
    def version(self) -> str:
        return "lexicon-1"

    def score(self, text: str) -> dict[Label, float]:
        return {
            label: sum(w for rx, w in patterns if rx.search(text))
            for label, patterns in _COMPILED.items()
        }

    def predict_one(self, text: str) -> Prediction:
        raw = self.score(text)
        present = {label for label, s in raw.items() if s >= THRESHOLD}
        ranked = present - {Label.basic_exchange, Label.none}
        if ranked:
            label = resolve(ranked)
        elif raw[Label.none] >= THRESHOLD:
            label = Label.none
        elif _DIRECTED.search(text) or raw[Label.basic_exchange] > 0:
            label = Label.basic_exchange
        else:
            label = Label.none
        weights = {lab: 0.1 + raw[lab] for lab in LABELS}
        weights[label] = max(weights.values()) + 1.0
        return Prediction(label, probabilities(weights))

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        return [self.predict_one(t) for t in texts]
