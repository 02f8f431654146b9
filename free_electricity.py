"""Power Up (free electricity) events from Octopus's customerFlexibilityCampaignEvents.

Usage: python3 free_electricity.py [config.txt]   lists upcoming Power Up events.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from errors import BadResponse
from octopus import parse_time
from tariff import Slot

log = logging.getLogger(__name__)


def parse_power_ups(data: Mapping[str, Any] | None, now: datetime) -> list[Slot]:
    """Current and upcoming free-electricity slots the account takes part in.

    An absent or oddly shaped answer means no free slots: a missing Power Up must never stop
    the dispatch schedule from being posted.
    """
    if not data:
        return []
    try:
        edges = (data.get("customerFlexibilityCampaignEvents") or {}).get("edges") or []
        slots = []
        for edge in edges:
            node = edge.get("node") or {}
            # Only an explicit "not taking part" excludes an event; older answers omit the flag.
            if node.get("isEventParticipant") is False:
                continue
            slot = Slot(parse_time(node.get("startAt")), parse_time(node.get("endAt")))
            if slot.end > now and slot.end > slot.start:
                slots.append(slot)
    except (AttributeError, TypeError, BadResponse) as err:
        log.warning("Ignoring Power Up events with an unexpected shape (%s)", err)
        return []
    return sorted(set(slots), key=lambda s: s.start)


def main(argv: list[str] | None = None) -> int:
    from event_listing import list_events

    return list_events(argv if argv is not None else sys.argv[1:], "power_ups")


if __name__ == "__main__":
    sys.exit(main())
