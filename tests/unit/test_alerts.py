"""The alert detector on hand-made counts: a spike alerts once, flat or thin data never."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from stream_jobs.alerts import AlertRule, alert_id, binomial_upper_tail, detect

H = timedelta(hours=1)
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def history(brand: str, hours: int, per_hour: int, enemies: int) -> tuple[dict, dict]:
    hourly = {(brand, T0 + H * h): per_hour for h in range(hours)}
    problems = {(brand, "enemies", T0 + H * h): enemies for h in range(hours)}
    return hourly, problems


def test_binomial_tail_matches_known_values() -> None:
    assert binomial_upper_tail(0, 10, 0.3) == 1.0
    assert binomial_upper_tail(10, 10, 0.5) == pytest.approx(0.5**10)
    exact = sum(math.comb(20, k) * 0.1**k * 0.9 ** (20 - k) for k in range(5, 21))
    assert binomial_upper_tail(5, 20, 0.1) == pytest.approx(exact, rel=1e-9)


def test_a_spike_gives_exactly_one_alert_with_its_brand_and_label() -> None:
    hourly, problems = history("Acme", 200, 40, 2)  # 5% enemies for 200 hours
    flat_h, flat_p = history("Bolt", 200, 40, 2)
    hourly.update(flat_h)
    problems.update(flat_p)
    spike = T0 + H * 200
    for h in range(3):  # a three-hour incident at 40%
        hourly[("Acme", spike + H * h)] = 40
        problems[("Acme", "enemies", spike + H * h)] = 16
        hourly[("Bolt", spike + H * h)] = 40
        problems[("Bolt", "enemies", spike + H * h)] = 2
    windows = [T0 + H * h for h in range(168, 203)]
    alerts = detect(hourly, problems, windows, AlertRule(), {})
    assert [(a.brand, a.label, a.window_start) for a in alerts] == [("Acme", "enemies", spike)]
    alert = alerts[0]
    assert alert.observed_share == 0.4 and 0.04 < alert.expected_share < 0.06
    assert alert.p_value < 1e-6 and alert.lift > 6
    assert alert.id == alert_id("Acme", "enemies", spike)
    # Cooldown: an earlier alert for the same brand and label within 24 h silences this one.
    assert detect(hourly, problems, windows, AlertRule(), {("Acme", "enemies"): [spike - H]}) == []


def test_low_volume_and_noise_do_not_alert() -> None:
    hourly, problems = history("Tiny", 200, 3, 0)
    hourly[("Tiny", T0 + H * 200)] = 4
    problems[("Tiny", "enemies", T0 + H * 200)] = 3  # 75%, but only 4 messages
    noisy_h, noisy_p = history("Noisy", 201, 50, 3)
    noisy_p[("Noisy", "enemies", T0 + H * 200)] = 6  # 12% against 6%: within chance
    hourly.update(noisy_h)
    problems.update(noisy_p)
    assert detect(hourly, problems, [T0 + H * 200], AlertRule(), {}) == []


def test_rule_is_validated() -> None:
    with pytest.raises(ValueError):
        AlertRule(alpha=0)


def test_webhook_delivery_retries_then_reports_what_it_could_not_deliver() -> None:
    import asyncio

    import aiohttp
    from aiohttp import web

    from stream_jobs.alert_delivery import deliver, parse_targets, payload
    from stream_jobs.testing import free_port

    alert = detect(
        *history("Acme", 1, 40, 20), [T0], AlertRule(min_lift=1.0, prior_share=0.05), {}
    )[0]
    calls: list[dict[str, object]] = []

    async def flaky(request: web.Request) -> web.Response:
        calls.append(await request.json())
        return web.Response(status=503 if len(calls) < 3 else 200)

    async def scenario() -> tuple[str | None, str | None]:
        app = web.Application()
        app.router.add_post("/hook", flaky)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        good, dead = parse_targets(f"http://127.0.0.1:{port}/hook, slack+http://127.0.0.1:1/x")
        async with aiohttp.ClientSession() as session:
            ok = await deliver(session, alert, good, attempts=4, backoff=0.01)
            failed = await deliver(session, alert, dead, attempts=2, backoff=0.01)
        await runner.cleanup()
        return ok, failed

    ok, failed = asyncio.run(scenario())
    assert ok is None and len(calls) == 3  # two 503s, then accepted
    assert calls[-1]["brand"] == "Acme" and calls[-1]["label"] == "enemies"
    assert failed is not None and "Connect" in failed  # becomes the dead letter's reason
    assert "Acme" in payload(alert, parse_targets("slack+http://x/y")[0])["text"]
    with pytest.raises(ValueError):
        parse_targets("ftp://nope")
