"""The lexicon baseline: the codebook's signal phrases as weighted patterns.

It implements ``Classifier`` from the codebook alone, with no training: each label has a list
of weighted regular expressions drawn from the codebook's "typical signals" (plus their
common spellings), the labels whose evidence passes a threshold are resolved with the
codebook's precedence rule, and a message with no signal is a ``basic_exchange`` when it reads
like a customer talking to a brand, else ``none``. It is the baseline the fine-tuned model is
measured against, so it stays deliberately simple and transparent. ``predict_treatment`` does
the same for agent turns with the treatment codebook's cues (``docs/treatment.md``), so the
product still labels brand replies when no model is installed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from models.classifier import Classifier, Prediction, probabilities
from models.treatment import resolve_treatment
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

    def treat_one(self, text: str) -> Prediction:
        raw = {label: sum(w for rx, w in cues if rx.search(text)) for label, cues in _AGENT.items()}
        present = {label for label, s in raw.items() if s >= THRESHOLD} - {Label.none}
        if present:
            label = resolve_treatment(present)
        elif raw[Label.none] >= THRESHOLD or len(_WORD.findall(text)) < 3:
            label = Label.none  # system lines, hold/transfer notices, bare links and handles
        else:
            label = Label.basic_exchange  # an agent engaging the matter, nothing more
        weights = {lab: 0.1 + raw.get(lab, 0.0) for lab in LABELS}
        weights[label] = max(weights.values()) + 1.0
        return Prediction(label, probabilities(weights))

    def predict_treatment(self, texts: Sequence[str]) -> list[Prediction]:
        return [self.treat_one(t) for t in texts]


# Agent-side cues: how a brand's reply treats the customer (docs/treatment.md). Courtesy
# (thanks, sorry, DM us, signatures) is deliberately absent: it never decides a treatment.
AGENT_SIGNALS: dict[Label, list[tuple[str, W]]] = {
    Label.none: [
        (r"^\s*\[(system|auto|bot|internal|virtual assistant)", 1.5),
        (r"\b(has (joined|left) the (chat|conversation)|transferr(ed|ing) you)\b", 1.5),
        (r"\b(you are now connected with|connecting you to)\b", 1.5),
        (r"\b(please (hold|wait)|hold the line|do not reply|auto-?reply|out of the office)\b", 1.5),
        (r"\b(may be recorded|ticket #?\w+ (has been )?created|session (ended|timed out))\b", 1.5),
        (r"^\s*(@\w+\s*)*(https?://\S+\s*)*$", 1.5),
    ],
    Label.business_partner: [
        (r"\b(great|good|brilliant|clever|smart) (idea|suggestion|point|shout|catch)\b", 1.2),
        (r"\b(feature request|suggestion|roadmap|beta|upvote|ideas? (board|portal|forum))\b", 1.0),
        (r"\b(product|dev|design|engineering|developers?) team\b|\bour (devs|developers)\b", 0.8),
        (r"\b(nice catch|repro|bug report|feedback (forum|tool|report))\b", 1.0),
    ],
    Label.buddies: [
        (r"\b(haha+|lol|lmao)\b|[\U0001F602\U0001F923\U0001F60E\U0001F525\U0001F64C]", 1.0),
        (r"\b(legend|iconic|no notes|we see you|vibe|respect)\b", 0.8),
    ],
    Label.best_friends: [
        (r"\b(sorry for your loss|condolences|get well|thinking of you|rooting for you)\b", 1.5),
        (r"\bi('ll| will) (personally|call you|check in|stay with you|ring you)\b", 1.2),
        (r"\b(myself|i remember|you mentioned|look after yourself|take care of yourself)\b", 1.0),
    ],
    Label.marriage: [
        (r"\b(loyal|loyalty)\b", 1.2),
        (r"\b\d+\s*(years|yrs)\b|\bsince (19|20)\d\d\b|\b(decades?|long-?standing)\b", 0.6),
        (r"\b(many more years|anniversary|part of the family)\b", 0.8),
    ],
    Label.fling: [
        (r"\b(brand[- ]new|just (launched|dropped|landed)|limited (edition|time|run))\b", 1.0),
        (r"\b(new (drop|season|collection|flavou?r|menu)|be (one of )?the first)\b", 1.0),
        (r"\b(welcome (aboard|to the)|first (order|visit|time|ride|flight))\b", 0.8),
        (r"\byou (have|'ve got) to try\b", 0.8),
    ],
    Label.dependency: [
        (r"\b(streak|hooked|addict\w*|habit|your usual)\b", 1.0),
        (r"\b(just )?one more (episode|match|run|scroll)\b", 1.0),
        (r"\bcan'?t (go|live|function|start|survive|sleep)\b|\bwithout (us|it)\b", 0.8),
    ],
    Label.master_servant: [
        (r"\b(your (every )?wish|at your (complete |entire )?(disposal|service|command))\b", 1.5),
        (r"\b(humbl[ey]|esteemed|distinguished|honou?red to serve|most valued)\b", 0.8),
        (r"\b(non-?negotiable|(decision|ruling) (is|stands) final|no exceptions)\b", 1.2),
        (r"\b(you (are|'re) required|you must)\b", 1.0),
        (r"\bnot (open to|subject to) (discussion|negotiation)\b", 1.0),
    ],
    Label.captive: [
        (r"\b(early (termination|exit|repayment)|(termination|exit) (fee|charge))\b", 1.5),
        (r"\b(minimum (term|commitment)|notice period|in contract)\b", 1.0),
        (r"\b(non-?refundable|forfeit\w*)\b", 1.0),
        (r"\b(only (be )?(cancel\w*|closed)|in (person|branch|writing)|retention|pac code)\b", 1.0),
        (r"\b(travel credit|store credit|remaining (months|payments|balance|contract))\b", 0.8),
    ],
    Label.love_hate: [
        (r"\b(love[- ]hate|frenem\w*)\b", 1.5),
        (r"\b(hate|roast|drag|complain)\w*\b.{0,60}\b(love|adore)\b", 1.2),
        (r"\b(love|adore|value)\w*\b.{0,60}\b(but|hate)\b.{0,60}\b(ban|block|stop|close)\w*", 1.2),
    ],
    Label.ex_friends: [
        (r"\b(sorry|sad|hate) to (see you go|lose you)\b|\bwe miss(ed)? you\b", 1.5),
        (r"\b(it'?s been a while|win you back|welcome you back|lost your trust)\b", 1.2),
        (r"\b(decided to (close|end|terminate)|door'?s? (is )?always open|keep you as a)\b", 1.2),
    ],
    Label.enemies: [
        (r"\b(your (own )?fault|user error|you should have|nice try)\b", 1.5),
        (r"\b(skill issue|get a grip|not our problem|don'?t come back|see you in court)\b", 1.5),
        (r"\bmaybe (read|try|practi[sc]e)\b", 1.5),
        (r"\b(we (won'?t|will not) be (responding|replying)|lying|liar|fraudulent)\b", 1.2),
    ],
}
_AGENT = {
    label: [(re.compile(p, re.IGNORECASE), w) for p, w in cues]
    for label, cues in AGENT_SIGNALS.items()
}
_WORD = re.compile(r"[^\W\d_]{2,}")
