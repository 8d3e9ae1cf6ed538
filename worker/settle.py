"""The worker's one decision about a delivered message, as a value: ack it, give it back to
the queue, or park it on ``paysync.dead`` with a reason. Pure; ``worker/handler.py``
carries it out.

- applied (or an observation absorbed as duplicate/stale): ack, after the commit;
- ``Stopping`` (shutdown began while the message waited for the database): requeue;
- ``Permanent`` (unknown provider, unparseable authenticated body): dead-letter with the
  reason;
- anything else (our bug): requeue, and dead-letter on the last delivery the queue's
  ``x-delivery-limit`` allows, so one poison message cannot circle forever.

A ``Transient`` error never reaches here: the handler retries it while running.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from paysync.errors import Permanent


class Stopping(Exception):
    """Shutdown began while a message waited for the database."""


class Action(StrEnum):
    ACK = "ack"
    REQUEUE = "requeue"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True, slots=True, kw_only=True)
class Settlement:
    action: Action
    # For a dead letter: ``<error class>: <message>``, the x-paysync-error header.
    reason: str = ""
    # Our bug (not one of paysync's own errors): logged with its traceback.
    unexpected: bool = False


ACK = Settlement(action=Action.ACK)
REQUEUE = Settlement(action=Action.REQUEUE)


def settle(error: BaseException | None, *, deliveries: object, delivery_limit: int) -> Settlement:
    """What to do with a message whose handling ended with ``error`` (None: applied).

    ``deliveries`` is the message's ``x-delivery-count`` header (how often the broker had
    delivered it before; absent on the first delivery)."""
    if error is None:
        return ACK
    if isinstance(error, Stopping):
        return REQUEUE
    reason = f"{type(error).__name__}: {error}"
    if isinstance(error, Permanent):
        return Settlement(action=Action.DEAD_LETTER, reason=reason)
    before = deliveries or 0  # absent on a first delivery; an odd value is never the last
    if isinstance(before, int) and before + 1 >= delivery_limit:
        return Settlement(action=Action.DEAD_LETTER, reason=reason, unexpected=True)
    return Settlement(action=Action.REQUEUE, unexpected=True)
