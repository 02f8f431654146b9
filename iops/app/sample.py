"""--sample: the day's schedule from the bundled recorded Octopus answers; needs no config or keys."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING

from iops.app.config import DATA_DIR, EXAMPLE_PATH, load_config
from iops.app.exits import EXIT_OK
from iops.core.settings import Config

if TYPE_CHECKING:
    from iops.core.decision import Gathered


def load_sample(now: datetime | None) -> tuple[Config, Gathered, datetime]:
    """The recorded answers, run through the same parsers and rules as live data."""
    from iops.core.decision import Facts, assemble
    from iops.core.dispatch_rules import resolve_rules
    from iops.core.rates import resolve_rates
    from iops.services.kraken_answers import (
        live_evs,
        merge_power_ups,
        parse_dispatch_data,
        parse_power_ups,
        parse_session_events,
    )

    meta = json.loads((DATA_DIR / "sample.json").read_text(encoding="utf-8"))
    config = load_config(EXAMPLE_PATH, env={}, need_octopus=False, need_tesla=False)
    when = now or datetime.fromisoformat(meta["recorded_at"])
    kraken_data = json.loads((DATA_DIR / "kraken_dispatches.json").read_text(encoding="utf-8"))["data"]
    session_data = json.loads((DATA_DIR / "saving_sessions.json").read_text(encoding="utf-8"))["data"]
    tariff = config.tariff
    facts = Facts(
        dispatches=parse_dispatch_data(kraken_data, sorted(live_evs(kraken_data["devices"]))),
        power_ups=parse_power_ups(merge_power_ups(kraken_data), when),
        sessions=parse_session_events(session_data, when),
        rates=resolve_rates(tariff, None),
        rules=resolve_rules(tariff.dispatch_trust, tariff.car_allowance_half_hours, meta.get("import_tariff_code")),
    )
    gathered, _ = assemble(config, facts, when)
    return config, gathered, when


def run_sample(at: datetime | None, *, dry_run: bool) -> int:
    from iops.core.decision import decide
    from iops.core.schedule_view import describe_rules, render_schedule
    from iops.services.tesla import tou_settings_body

    config, gathered, when = load_sample(at)
    plan, tariff, _ = decide(config, gathered, when)
    view = render_schedule(
        plan, when, config.tariff.time_zone, gathered.rates, note=" - bundled sample data", reasons=gathered.reasons
    )
    view += "\n" + describe_rules(gathered.rules)
    if dry_run:
        print(view, file=sys.stderr)
        print(json.dumps(tou_settings_body(tariff), indent=2))
    else:
        print(view)
        print(
            "\nThis was a dry run on bundled sample data; nothing was posted. "
            "Run with a config path (see README) to use your own account."
        )
    return EXIT_OK
