"""PII redaction: what is stored or leaves the service carries no e-mail, phone or card number.

A ``Redactor`` replaces e-mail addresses, phone numbers (international, North American, and
national numbers with a leading 0), payment card numbers (only digit runs that pass the Luhn
check *and* start like a card, so order and tracking numbers survive) and IBANs (mod-97 checked)
with typed placeholders: ``[EMAIL]``, ``[PHONE]``, ``[CARD]``, ``[IBAN]``. Optionally it also
replaces people's @handles with ``[HANDLE]`` while keeping the brand's own handle (the brand is
how a message is attributed), and pseudonymises ``author`` with a keyed hash, so one author's
messages still group together without the name. It applies to envelopes (text, author, string
metadata) and to dead letters (raw input and reason). Redacting twice changes nothing more.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from schemas import DeadLetter, Envelope, Settings
from schemas.envelope import MAX_TEXT_CHARS

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.)+"
    r"[A-Za-z]{2,24}(?![\w-])"
)
# Digit runs of card length, optionally grouped by single spaces or dashes.
_CARD = re.compile(r"(?<![\w+\-.,])\d(?:[ \-]?\d){12,18}(?![\w\-]|[.,]\d)")
_IBAN = re.compile(r"(?<![\w-])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![\w-])")
_PHONE = re.compile(
    r"""(?<![\w+\-./])(?:
        \+\d{1,4}+(?:[ .\-]?+(?:\(\d{1,5}+\)|\d{1,5}+)){1,6}+           # +CC and groups
      | (?:1[ .\-]?)?\(?[2-9]\d{2}\)?[ .\-]?[2-9]\d{2}[ .\-]\d{4}    # North America
      | 0\d{1,4}[ .\-/]\d{2,8}(?:[ .\-]\d{2,4}){0,3}                # national, trunk 0
    )(?![\w\-/]|[.,]\d)""",
    re.X,
)
# A bare digit run is an order or tracking number unless it is introduced as a phone number.
_CALL_ME = re.compile(
    r"(?i)\b(?:call|phone|tel|telephone|mobile|cell|whatsapp|text|sms)"
    r"(?>\s*+(?:(?:me|us|him|her|them|at|on|to|is|number|no|nr)\b\.?|[:#]))*+\s*+"
    r"(\+?\d{10,15})(?!\w)"
)
_HANDLE = re.compile(r"(?<![\w@.])@([A-Za-z0-9_](?:[A-Za-z0-9_.]{0,28}[A-Za-z0-9_])?)(?![\w@])")
_PSEUDONYM = re.compile(r"anon:[0-9a-f]{16}")
# Issuer prefixes and lengths of the card networks in use (Visa, Mastercard, Amex, Discover,
# JCB, Diners, UnionPay, Maestro); a Luhn-valid number outside them is kept.
_NETWORKS = re.compile(
    r"4\d{12}(?:\d{3}){0,2}|5[1-5]\d{14}|2(?:2[2-9]\d|[3-6]\d\d|7[01]\d|720)\d{12}"
    r"|3[47]\d{13}|6(?:011|5\d\d|4[4-9]\d)\d{12,15}|35(?:2[89]|[3-8]\d)\d{12,15}"
    r"|3(?:0[0-5]|[689]\d)\d{11,16}|62\d{14,17}|(?:5[06-8]|6\d)\d{10,17}"
)

EMAIL, PHONE, CARD, IBAN, HANDLE = "[EMAIL]", "[PHONE]", "[CARD]", "[IBAN]", "[HANDLE]"


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = int(char)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def _card(match: re.Match[str]) -> str:
    digits = _digits(match.group(0))
    if luhn_ok(digits) and _NETWORKS.fullmatch(digits):
        return CARD
    return match.group(0)


def iban_ok(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _iban(match: re.Match[str]) -> str:
    # The greedy match may have taken a following capitalised word: try shorter spans too.
    text = match.group(0)
    for end in range(len(text), 14, -1):
        if (end == len(text) or text[end] == " ") and iban_ok(text[:end]):
            return IBAN + text[end:]
    return text


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = len(_digits(text))
    if text.startswith("+"):
        ok = 8 <= digits <= 15
    elif text.startswith("0"):
        ok = 9 <= digits <= 13
    else:
        ok = 10 <= digits <= 11
    return PHONE if ok else text


def _call_me(match: re.Match[str]) -> str:
    start, end = match.span(1)
    whole = match.group(0)
    offset = match.start()
    return whole[: start - offset] + PHONE + whole[end - offset :]


_PASSES: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (_EMAIL, EMAIL),  # first: an address may hold digits that look like a phone or a card
    (_CARD, _card),
    (_IBAN, _iban),
    (_PHONE, _phone),
    (_CALL_ME, _call_me),
)


def redact_pii(text: str) -> str:
    """``text`` with e-mails, phones, cards and IBANs replaced by their placeholders."""
    for _ in range(3):  # until nothing changes: a replacement can expose a neighbour
        before = text
        for pattern, replacement in _PASSES:
            if pattern is _EMAIL and "@" not in text:
                continue
            text = pattern.sub(replacement, text)
        if text == before:
            break
    return text


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


@dataclass(frozen=True)
class Redactor:
    """What to remove; ``Redactor()`` redacts PII only, ``Redactor(pii=False)`` nothing."""

    pii: bool = True
    handles: bool = False
    keep_handles: frozenset[str] = frozenset()  # normalised handles (lowercase, alphanumeric)
    author_key: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Redactor:
        key = settings.author_key.get_secret_value().encode() if settings.author_key else None
        return cls(
            pii=settings.redact_pii,
            handles=settings.redact_handles,
            keep_handles=frozenset(
                _norm(h) for h in settings.redact_keep_handles.split(",") if _norm(h)
            ),
            author_key=key or None,
        )

    @property
    def active(self) -> bool:
        return self.pii or self.handles or self.author_key is not None

    def _brand_handle(self, handle: str, brand: str | None) -> bool:
        h = _norm(handle)
        if h in self.keep_handles:
            return True
        if brand is None:
            return False
        b = _norm(brand)
        # "@united" for United, "@AmericanAir" for American, "@AppleSupport" for Apple.
        return bool(b) and (h == b or (len(b) >= 3 and h.startswith(b)))

    def text(self, value: str, brand: str | None = None) -> str:
        """Redact one string; ``brand``'s own handle is kept when handles are redacted."""
        if self.pii:
            value = redact_pii(value)
        if self.handles and "@" in value:
            value = _HANDLE.sub(
                lambda m: m.group(0) if self._brand_handle(m.group(1), brand) else HANDLE, value
            )
        return value

    def author(self, author: str | None, brand: str) -> str | None:
        if author is None:
            return None
        if self.author_key is not None:
            # The brand's own account is not a person; a pseudonym is never hashed again.
            if _norm(author) == _norm(brand) or _PSEUDONYM.fullmatch(author):
                return author
            digest = hmac.new(self.author_key, author.encode(), hashlib.sha256).hexdigest()
            return f"anon:{digest[:16]}"
        return self.text(author, brand)

    def envelope(self, envelope: Envelope) -> Envelope:
        """The envelope with text, author and string metadata redacted (others untouched)."""
        if not self.active:
            return envelope
        updates: dict[str, object] = {}
        text = self.text(envelope.text, envelope.brand)
        if text != envelope.text:
            # A short @handle becomes a longer placeholder: stay within the envelope's limit.
            updates["text"] = text[:MAX_TEXT_CHARS]
        author = self.author(envelope.author, envelope.brand)
        if author != envelope.author:
            updates["author"] = author
        metadata = {
            k: self.text(v, envelope.brand) if isinstance(v, str) else v
            for k, v in envelope.metadata.items()
        }
        if metadata != envelope.metadata:
            updates["metadata"] = metadata
        return envelope.model_copy(update=updates) if updates else envelope

    def dead_letter(self, record: DeadLetter) -> DeadLetter:
        """The dead letter with its raw input and reason redacted (no brand: keep-list only)."""
        if not (self.pii or self.handles):
            return record
        raw, reason = self.text(record.raw), self.text(record.reason)
        if raw == record.raw and reason == record.reason:
            return record
        return record.model_copy(update={"raw": raw, "reason": reason})

    def envelopes(self, envelopes: Iterable[Envelope]) -> list[Envelope]:
        return [self.envelope(e) for e in envelopes]

    def dead_letters(self, records: Iterable[DeadLetter]) -> list[DeadLetter]:
        return [self.dead_letter(d) for d in records]
