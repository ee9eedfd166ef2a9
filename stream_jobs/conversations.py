"""Conversations: the customer's relationship, the brand's treatment, and their mismatch.

A support conversation is a sequence of turns; customer turns carry the relationship label,
agent turns a treatment label (docs/treatment.md). ``ConversationState`` keeps one
conversation's turns by index, so a replayed turn replaces itself and the state is the same
however often the stream is re-read; it serialises to a small dict, the value of the stream
job's table (keyed by conversation id, so it moves with its partition between workers).
``summarize`` applies the rules of docs/conversations.md: the customer's relationship is the
strongest label by the codebook's precedence (problems first, then the more intense bonds, with
``basic_exchange``, the default of any plain request, last); the brand's treatment is its most
frequent non-``none`` treatment (ties go to the later turn); the first matching rule of
``MISMATCH_RULES`` names the mismatch. The offline ``analyze`` runs the same code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas import PRECEDENCE, PROBLEM_LABELS, ClassifiedMessage, Label, Role

# Codebook rule 4's order, extended to the types it does not rank: the more specific first.
CONVERSATION_PRECEDENCE: tuple[Label, ...] = (
    *PRECEDENCE,
    Label.business_partner,
    Label.master_servant,
    Label.fling,
    Label.basic_exchange,
)
BONDS = frozenset({Label.buddies, Label.best_friends, Label.marriage, Label.dependency})
WARM = BONDS | {Label.fling}
PROBLEMS = frozenset(PROBLEM_LABELS)


@dataclass(frozen=True)
class MismatchRule:
    """A kind of mismatch: the customer's relationships it applies to, the treatments that
    miss them, and why it costs."""

    kind: str
    customer: frozenset[Label]
    treatment: frozenset[Label]
    meaning: str


ANY_RELATIONSHIP = frozenset(set(Label) - {Label.none})
MISMATCH_RULES: tuple[MismatchRule, ...] = (
    MismatchRule(
        "hostile_treatment",
        ANY_RELATIONSHIP,
        frozenset({Label.enemies, Label.captive, Label.love_hate}),
        "the brand's replies are hostile, or lock the customer in",
    ),
    MismatchRule(
        "written_off",
        ANY_RELATIONSHIP,
        frozenset({Label.ex_friends}),
        "the brand treats the relationship as over: a farewell or a closed door, no recovery",
    ),
    MismatchRule(
        "problem_met_with_boilerplate",
        PROBLEMS,
        frozenset({Label.basic_exchange, Label.fling}),
        "an angry, broken or trapped customer gets templates or promotions",
    ),
    MismatchRule(
        "partner_treated_as_exchange",
        frozenset({Label.business_partner}),
        frozenset({Label.basic_exchange, Label.fling}),
        "a customer offering ideas or reports gets ticket handling or promotions",
    ),
    MismatchRule(
        "bond_treated_as_exchange",
        BONDS,
        frozenset({Label.basic_exchange}),
        "a loyal or attached customer is processed like a transaction",
    ),
    MismatchRule(
        "status_mismatch",
        ANY_RELATIONSHIP - {Label.master_servant},
        frozenset({Label.master_servant}),
        "the brand dictates terms (or grovels) to a customer who asked for neither",
    ),
    MismatchRule(
        "overfamiliar",
        frozenset({Label.basic_exchange}),
        WARM,
        "a customer who wants a transaction gets courtship, hype or banter",
    ),
)


def strongest(labels: Iterable[Label]) -> Label:
    """The conversation-level relationship: the first of ``CONVERSATION_PRECEDENCE`` present."""
    present = set(labels)
    return next((label for label in CONVERSATION_PRECEDENCE if label in present), Label.none)


def dominant(treatments: Sequence[Label]) -> Label | None:
    """The most frequent non-``none`` treatment; a tie goes to the one used last."""
    real = [t for t in treatments if t is not Label.none]
    if not real:
        return Label.none if treatments else None
    counts = Counter(real)
    top = max(counts.values())
    return next(t for t in reversed(real) if counts[t] == top)


def mismatch_kind(customer: Label, treatment: Label | None) -> str | None:
    if customer is Label.none or treatment is None or treatment is Label.none:
        return None
    for rule in MISMATCH_RULES:
        if customer in rule.customer and treatment in rule.treatment:
            return rule.kind
    return None


@dataclass
class ConversationState:
    """One conversation's turns by index: ``(role, label, created_at ISO)``."""

    conversation_id: str
    brand: str = ""
    customer: str = ""
    turns: dict[int, tuple[str, str, str]] = field(default_factory=dict)

    def add(self, m: ClassifiedMessage) -> None:
        self.brand = m.brand
        if m.role is Role.customer and m.author and not self.customer:
            self.customer = m.author
        label = m.treatment if m.role is Role.agent else m.label
        index = m.turn_index if m.turn_index is not None else len(self.turns)
        value = label.value if label is not None else Label.none.value
        self.turns[index] = (m.role.value, value, m.created_at.isoformat())

    def ordered(self) -> list[tuple[str, Label, str]]:
        return [(r, Label(v), t) for _, (r, v, t) in sorted(self.turns.items())]

    def to_dict(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "brand": self.brand,
            "customer": self.customer,
            "turns": {str(k): list(v) for k, v in self.turns.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConversationState:
        turns = {int(k): (str(v[0]), str(v[1]), str(v[2])) for k, v in data["turns"].items()}
        return cls(data["conversation_id"], data["brand"], data["customer"], turns)


@dataclass(frozen=True)
class ConversationSummary:
    """What the product reports per conversation (``transcripts analyze`` prints these)."""

    conversation_id: str
    brand: str
    customer: str
    customer_relationship: Label
    treatment: Label | None
    mismatch: bool
    mismatch_kind: str | None
    customer_labels: list[Label]
    treatments: list[Label]
    turns: int
    started_at: datetime
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "brand": self.brand,
            "customer": self.customer,
            "customer_relationship": self.customer_relationship.value,
            "treatment": self.treatment.value if self.treatment else None,
            "mismatch": self.mismatch,
            "mismatch_kind": self.mismatch_kind,
            "customer_labels": [label.value for label in self.customer_labels],
            "treatments": [label.value for label in self.treatments],
            "turns": self.turns,
            "started_at": self.started_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


def summarize(state: ConversationState) -> ConversationSummary:
    turns = state.ordered()
    customer = [label for role, label, _ in turns if role == Role.customer.value]
    agent = [label for role, label, _ in turns if role == Role.agent.value]
    relationship = strongest(customer)
    treatment = dominant(agent)
    kind = mismatch_kind(relationship, treatment)
    times = [datetime.fromisoformat(t) for _, _, t in turns]
    return ConversationSummary(
        conversation_id=state.conversation_id,
        brand=state.brand,
        customer=state.customer,
        customer_relationship=relationship,
        treatment=treatment,
        mismatch=kind is not None,
        mismatch_kind=kind,
        customer_labels=customer,
        treatments=agent,
        turns=len(turns),
        started_at=min(times),
        updated_at=max(times),
    )


def summarize_messages(messages: Iterable[ClassifiedMessage]) -> list[ConversationSummary]:
    """Summaries of every conversation among ``messages`` (in order of first appearance)."""
    states: dict[str, ConversationState] = {}
    for m in messages:
        if m.conversation_id is None:
            continue
        states.setdefault(m.conversation_id, ConversationState(m.conversation_id)).add(m)
    return [summarize(state) for state in states.values()]
