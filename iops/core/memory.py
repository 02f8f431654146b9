"""How the sections of the state mark their times, so that one loader can bound them by the clock.

A time that records something that happened (``PAST``) is never later than now; a time that
schedules something (``ahead(seconds)``) is never further ahead than the longest wait its owner
ever sets. A clock stepped back, a replay with ``--at`` ahead, or a foreign state then cannot
freeze the scheduler: the loader treats such a time as now (or as the longest wait).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PAST: Mapping[str, Any] = {"bound": 0.0}


def ahead(seconds: float) -> Mapping[str, Any]:
    """A scheduled time: at most ``seconds`` after now."""
    return {"bound": float(seconds)}
