"""Alert delivery: webhooks (generic JSON or Slack-compatible) with retries.

A target is a URL; prefix it with ``slack+`` (``slack+https://hooks.slack.com/...``) to send
Slack's ``{"text": ...}`` shape instead of the alert's JSON object. Each delivery is retried
with exponential backoff; an alert a target never accepted is returned as failed so the caller
can write it to the dead-letter topic with the reason.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from stream_jobs.alerts import Alert


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    style: str  # "json" or "slack"

    def __repr__(self) -> str:
        return f"WebhookTarget({self.safe_name!r}, {self.style!r})"

    @property
    def safe_name(self) -> str:
        """Scheme and host only: a webhook's path is often its secret (Slack's are)."""
        parts = urlsplit(self.url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname or ''}{port}"


def parse_targets(spec: str) -> list[WebhookTarget]:
    targets = []
    for raw in (part.strip() for part in spec.split(",")):
        if not raw:
            continue
        style, url = (
            ("slack", raw.removeprefix("slack+")) if raw.startswith("slack+") else ("json", raw)
        )
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook {raw!r} is not an http(s) URL")
        targets.append(WebhookTarget(url, style))
    return targets


def slack_text(alert: Alert) -> str:
    window = alert.window_start.strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f":rotating_light: *{alert.brand}*: `{alert.label}` rose to {alert.observed_share:.0%} "
        f"of {alert.messages} messages in the hour from {window} "
        f"(expected {alert.expected_share:.1%}, {alert.lift:.1f}x, p={alert.p_value:.1e})",
    ]
    lines += [f"> {example[:200]}" for example in alert.examples]
    return "\n".join(lines)


def payload(alert: Alert, target: WebhookTarget) -> dict[str, Any]:
    return {"text": slack_text(alert)} if target.style == "slack" else alert.as_json()


async def deliver(
    session: aiohttp.ClientSession,
    alert: Alert,
    target: WebhookTarget,
    attempts: int = 4,
    backoff: float = 0.5,
) -> str | None:
    """Send one alert to one target; ``None`` on success, else the last error."""
    error = "not attempted"
    for attempt in range(attempts):
        try:
            async with session.post(
                target.url, json=payload(alert, target), timeout=aiohttp.ClientTimeout(total=10)
            ) as response:
                if response.status < 300:
                    return None
                error = f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        if attempt + 1 < attempts:
            await asyncio.sleep(backoff * 2**attempt)
    return error
