"""The outbox relay: claims due alerts, sends them, and records sent / retry / failed.

Each call is one "tick" (the lead's sensor or job calls it). Every alert is claimed
atomically with a lease before it is sent, so two workers never send the same key at the same
time; a worker that dies after claiming leaves a lease that expires, and the alert is claimed
and sent again on a later tick with the same ``Idempotency-Key``.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from pymongo.database import Database

from quant_pipelines.alerts._scrub import scrub
from quant_pipelines.alerts.transports import SendResult, Transport
from quant_pipelines.storage.alerts import FAILED, PENDING, SENT, AlertOutboxRepository

logger = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 6
DEFAULT_BASE_DELAY_S = 30.0
DEFAULT_MAX_DELAY_S = 3600.0
#: Longer than the transports' total timeout, so a slow send is never reclaimed mid-flight.
DEFAULT_LEASE_S = 120.0


@dataclass(frozen=True)
class DeliverySummary:
    """What one tick did.

    Attributes:
        claimed: Alerts claimed (each got at most one send).
        sent: Delivered (2xx).
        retried: Scheduled for another attempt.
        failed: Marked failed (attempts exhausted or a permanent error).
        lost_claims: Outcomes not recorded because another worker took over the claim.
        disabled_pending: Pending alerts of channels with no transport (kept, not sent).
    """

    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    lost_claims: int = 0
    disabled_pending: int = 0


def backoff_delay(
    attempt: int, *, base_delay: float, max_delay: float, rng: random.Random
) -> float:
    """Exponential backoff with "equal jitter": uniform in ``[d/2, d]``, ``d = base * 2**(n-1)``.

    Args:
        attempt: The attempt that just failed (1 for the first).
        base_delay: Delay before the second attempt, before jitter (seconds).
        max_delay: Cap on ``d``.
        rng: Source of the jitter.

    Returns:
        Seconds to wait before the next attempt.
    """
    exponent = min(max(attempt - 1, 0), 62)
    ceiling = min(max_delay, base_delay * 2.0**exponent)
    return ceiling / 2 + rng.uniform(0.0, ceiling / 2)


def _ceil_ms(value: dt.datetime) -> dt.datetime:
    """Rounds up to the millisecond MongoDB stores, so a wait is never cut short."""
    micro = value.microsecond
    rounded = math.ceil(micro / 1000) * 1000
    return value.replace(microsecond=0) + dt.timedelta(microseconds=rounded)


def _scrubber(transport: Transport) -> Callable[[str], str]:
    """The transport's own scrubber (it knows its secrets), after the generic URL scrub."""
    own = getattr(transport, "scrub", None)
    return (lambda text: scrub(own(text))) if callable(own) else scrub


def _send(transport: Transport, doc: Mapping[str, Any]) -> SendResult:
    clean = _scrubber(transport)
    try:
        result = transport.send(doc["payload"], idempotency_key=doc["idempotency_key"])
    except Exception as exc:  # a transport bug must not stop the relay
        # No traceback: its frames and message may hold the URL or a secret.
        logger.error(
            "alert %s: transport %s raised %s",
            doc["idempotency_key"],
            doc["channel"],
            clean(f"{type(exc).__name__}: {exc}"),
        )
        return SendResult(ok=False, error=f"transport raised {type(exc).__name__}")
    if result.error:
        # Every error is scrubbed here, whatever the transport did: it is stored in
        # ``alert_outbox.last_error`` and logged (and so lands in Dagster's compute logs).
        result = replace(result, error=clean(result.error))
    return result


def deliver_due(
    db: Database,
    *,
    transports: Mapping[str, Transport],
    now: dt.datetime | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    base_delay: float = DEFAULT_BASE_DELAY_S,
    max_delay: float = DEFAULT_MAX_DELAY_S,
    max_retry_after: float = DEFAULT_MAX_DELAY_S,
    lease_s: float = DEFAULT_LEASE_S,
    limit: int = 100,
    seed: int = 0,
) -> DeliverySummary:
    """Delivers every due alert once (one tick of the outbox relay).

    Args:
        db: The project database.
        transports: Transport per channel; alerts of other channels stay pending.
        now: Fixed time for this tick (tests); default: the clock, read at each step.
        max_attempts: Attempts before an alert is marked failed.
        base_delay: Backoff before the second attempt (seconds, before jitter).
        max_delay: Cap on the backoff.
        max_retry_after: Cap on a receiver's ``Retry-After`` (honoured as a minimum delay).
        lease_s: How long a claim holds; must exceed the transports' timeout.
        limit: Most alerts claimed in this tick.
        seed: Jitter seed; the jitter of an attempt depends only on (seed, key, attempt).

    Returns:
        Counts of what happened.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    clock: Callable[[], dt.datetime] = (lambda: now) if now else (lambda: dt.datetime.now(dt.UTC))
    repo = AlertOutboxRepository(db)
    channels = sorted(transports)
    counts = dict.fromkeys(("claimed", "sent", "retried", "failed", "lost_claims"), 0)
    seen: list[Any] = []
    while channels and counts["claimed"] < limit:
        start = clock()
        lease_until = _ceil_ms(start + dt.timedelta(seconds=lease_s))
        doc = repo.claim_next(channels=channels, now=start, lease_until=lease_until, exclude=seen)
        if doc is None:
            break
        seen.append(doc["_id"])
        counts["claimed"] += 1
        key, attempt = doc["idempotency_key"], doc["attempts"]
        if attempt > max_attempts:  # the worker that made the last attempt died mid-send
            error = f"lease expired after attempt {attempt - 1}; attempts exhausted"
            ok = repo.finish(doc, FAILED, now=start, error=error)
            counts["failed" if ok else "lost_claims"] += 1
            logger.error("alert %s failed: %s", key, error)
            continue
        result = _send(transports[doc["channel"]], doc)
        done = clock()
        if result.ok:
            ok = repo.finish(doc, SENT, now=done, status_code=result.status_code)
            outcome = "sent"
            logger.info("alert %s sent on attempt %d (HTTP %s)", key, attempt, result.status_code)
        elif result.permanent or attempt >= max_attempts:
            why = "permanent error" if result.permanent else f"{attempt} attempts"
            error = f"{result.error} ({why})"
            ok = repo.finish(doc, FAILED, now=done, status_code=result.status_code, error=error)
            outcome = "failed"
            logger.error("alert %s failed: %s", key, error)
        else:
            rng = random.Random(f"{seed}|{key}|{attempt}")
            delay = backoff_delay(attempt, base_delay=base_delay, max_delay=max_delay, rng=rng)
            if result.retry_after is not None:
                delay = max(delay, min(result.retry_after, max_retry_after))
            next_at = _ceil_ms(done + dt.timedelta(seconds=delay))
            error, code = result.error or "", result.status_code
            ok = repo.finish(
                doc, PENDING, now=done, status_code=code, error=error, next_attempt_at=next_at
            )
            outcome = "retried"
            logger.warning(
                "alert %s attempt %d failed (%s); retry in %.2f s",
                key,
                attempt,
                result.error,
                delay,
            )
        if not ok:
            logger.warning("alert %s: claim lost before the outcome was recorded", key)
        counts[outcome if ok else "lost_claims"] += 1
    disabled = repo.count_pending(channels_not_in=channels)
    if disabled:
        logger.warning("%d alert(s) pending on channels with no transport", disabled)
    return DeliverySummary(**counts, disabled_pending=disabled)
