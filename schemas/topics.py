"""Kafka topic names, in one place.

Every topic the product reads or writes is named here from a single prefix, so a deployment
that shares a cluster with other products changes one setting, not a dozen strings.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    """The product's topics for one prefix."""

    prefix: str = "relradar"

    @property
    def raw(self) -> str:
        """Envelopes from every connector, keyed by conversation or brand."""
        return f"{self.prefix}.raw"

    @property
    def classified(self) -> str:
        """Classified-message records produced by the classify job."""
        return f"{self.prefix}.classified"

    @property
    def deadletter(self) -> str:
        """Records that failed validation or processing, with the reason."""
        return f"{self.prefix}.deadletter"

    @property
    def alerts(self) -> str:
        """Problem-relationship alerts, one JSON object each."""
        return f"{self.prefix}.alerts"

    @property
    def conversations_changelog(self) -> str:
        """The stream job's conversation state (compact it in production)."""
        return f"{self.prefix}-conversations-changelog"

    def all(self) -> tuple[str, ...]:
        changelog = self.conversations_changelog
        return (self.raw, self.classified, self.deadletter, self.alerts, changelog)
