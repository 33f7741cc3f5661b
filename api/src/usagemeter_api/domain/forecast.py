"""Where a limit's usage is heading: the usage projected at its window's end, and when it reaches what is available.

The rate is the window's own average: its usage so far divided by the time elapsed in it, counted
as at least a tenth of the window (:data:`SAMPLE_SHARE`). The window's usage is a figure every
quota answer already has, so a forecast costs no read. The projection holds that rate until the
window ends::

    rate            = used / max(now - start, (end - start) / SAMPLE_SHARE)
    projected_used  = used + rate * (end - now)
    exhausted_at    = now + (available - used) / rate     when projected_used > available

Why the average and the floor: a burst late in a window is averaged over all of it so far rather
than taken for the new pace, and a burst in a period that started minutes ago is divided by a
tenth of the window rather than by those minutes, so the projection is at most eleven times the
usage instead of thousands of times. A window whose usage has reached what is available is
exhausted at ``now`` (the moment it was reached is not known from the window's total). A lifetime
window has no end and a rolling one slides (held at its own average rate, a rolling window keeps
what it holds, so its projection would only repeat ``used``; its ``frees_at`` is what a user can act
on): both have no forecast. Pure: every figure comes in; micro-units as :mod:`usagemeter_api.quantity`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from usagemeter_api.domain.periods import Window
from usagemeter_api.quantity import from_micros

__all__ = ["NO_FORECAST", "SAMPLE_SHARE", "Forecast", "forecast"]

#: The elapsed time a rate is divided by is at least 1/SAMPLE_SHARE of the window.
SAMPLE_SHARE = 10

_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Forecast:
    """The usage projected at a window's end (micro-units, rounded down) and when it reaches what is available.

    ``exhausted_at`` is None when the projection stays at or under what is available (or there is
    no limit); ``projected_used`` is None when the window has no end to project to.
    """

    projected_used: int | None
    exhausted_at: datetime | None

    def fields(self) -> dict[str, object]:
        """The forecast as the answers show it: ``projected_used`` in the unit and ``projected_exhausted_at``."""
        projected = None if self.projected_used is None else from_micros(self.projected_used)
        return {"projected_used": projected, "projected_exhausted_at": self.exhausted_at}


#: A window without an end (lifetime) or that slides (rolling).
NO_FORECAST = Forecast(None, None)


def forecast(used: int, available: int | None, window: Window, kind: str, now: datetime) -> Forecast:
    """The forecast of ``used`` micro-units in ``window`` (of ``kind``) at ``now``; ``available`` None: no limit."""
    if kind in ("lifetime", "rolling"):
        return NO_FORECAST
    if used <= 0:
        # Nothing used (or corrected below zero): no rate to hold.
        return Forecast(used, None)
    elapsed = max(now - window.start, (window.end - window.start) / SAMPLE_SHARE) // _MICROSECOND
    left = max(window.end - now, timedelta(0)) // _MICROSECOND
    projected = used + used * left // elapsed
    if available is None or projected <= available:
        return Forecast(projected, None)
    if used >= available:
        return Forecast(projected, now)
    # The first microsecond at which used + rate * t has reached available.
    wait = -(-(available - used) * elapsed // used)
    return Forecast(projected, now + wait * _MICROSECOND)
