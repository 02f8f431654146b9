"""The durable records beside each config (``<config>.db``, SQLite): what nothing can rebuild.

- the Fleet API token chain (a rotated refresh token exists nowhere else);
- the tariff each site had before the scheduler's first post, for --restore;
- the pause (from --restore until --resume);
- the history (schema 2): what the Powerwall was told (each accepted post), the dispatches seen,
  and what Octopus settled for each half-hour, for the bill check (--report). Octopus keeps only
  about a day of completed dispatches, so this is the only record of them;
- the battery's energy per half-hour from Tesla's history (schema 3), for the battery check.

Every write is a transaction. The schema is versioned (``PRAGMA user_version``) and upgraded in
place. The file is mode 0600, one per config, and never silently replaced: a file that cannot be
read or written stops the command (exit 1) naming the file and the fix, and is left as it is.
A quiet cron minute never opens it. Readable with the ``sqlite3`` command.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iops.core.battery_check import HalfHourEnergy
from iops.core.bill_check import Line, Settled, ToldVersion
from iops.core.errors import StoreUnusable
from iops.services.tesla import FleetChain

if TYPE_CHECKING:
    import sqlite3

SCHEMA_VERSION = 3
# Each step takes the schema from the version before it to its own number.
MIGRATIONS: Mapping[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE fleet_chain (
             id INTEGER PRIMARY KEY CHECK (id = 1),
             seed TEXT NOT NULL,
             refresh_token TEXT NOT NULL,
             access_token TEXT NOT NULL DEFAULT '',
             expires_at REAL NOT NULL DEFAULT 0,
             kept_at REAL NOT NULL)""",
        """CREATE TABLE own_tariff (
             site_id TEXT PRIMARY KEY,
             tariff TEXT,  -- tariff_content_v2 as JSON; NULL when the site had none of the user's
             note TEXT NOT NULL DEFAULT '',
             kept_at REAL NOT NULL)""",
        """CREATE TABLE pause (
             id INTEGER PRIMARY KEY CHECK (id = 1),
             since REAL NOT NULL,
             why TEXT NOT NULL,
             put_back INTEGER NOT NULL DEFAULT 0  -- 1 while the user's own tariff waits to be posted back
           )""",
    ),
    2: (
        # Each tariff Tesla accepted: its week as 7 lines (Monday first) of 48 symbols (# peak, . off-peak,
        # 0 free, ! saving session), its prices and why each half-hour is what it is. The one live during
        # a half-hour is the last accepted before the half-hour's middle.
        """CREATE TABLE told (
             accepted_at REAL PRIMARY KEY,  -- Unix time
             kind TEXT NOT NULL,  -- ours, or theirs (the user's own tariff put back)
             digest TEXT NOT NULL,
             grid TEXT NOT NULL,
             prices TEXT NOT NULL,  -- {"OFF_PEAK": [buy, sell], ...} GBP/kWh
             reasons TEXT NOT NULL)  -- {"2026-11-24 14:00": "planned", ...} (local half-hour starts)""",
        # The dispatch as last seen for each half-hour outside the fixed window, whatever dispatch_trust is
        # in force: not-started (planned, the car never began it), started, awaiting, completed, over-allowance.
        """CREATE TABLE slot_facts (
             start TEXT PRIMARY KEY,  -- UTC half-hour start, ISO 8601
             fact TEXT NOT NULL,
             updated_at REAL NOT NULL)""",
        # Octopus's dispatch answer, each time it changed: planned per car, completed, each car's state.
        "CREATE TABLE dispatches_seen (seen_at REAL PRIMARY KEY, data TEXT NOT NULL)",
        # What Octopus settled per half-hour of the import meter, every read kept (Octopus revises).
        """CREATE TABLE settlement (
             start TEXT NOT NULL,  -- UTC half-hour start, ISO 8601
             read_at REAL NOT NULL,
             kwh REAL NOT NULL,
             lines TEXT NOT NULL,  -- [[label, kWh, pence per kWh with VAT or null], ...]
             PRIMARY KEY (start, read_at))""",
        # Each allowance day (12:00 to 12:00 local, named by its first date): when it was read, and how it stood.
        """CREATE TABLE settled_days (
             day TEXT PRIMARY KEY,
             reads TEXT NOT NULL,  -- [Unix time, ...]
             status TEXT NOT NULL,  -- complete, partial, empty
             note TEXT NOT NULL DEFAULT '')""",
    ),
    3: (
        # The battery's energy per half-hour, from Tesla's energy history (Wh): only complete half-hours.
        """CREATE TABLE battery (
             start TEXT PRIMARY KEY,  -- UTC half-hour start, ISO 8601
             discharge_wh REAL NOT NULL,  -- battery_energy_exported
             grid_charge_wh REAL NOT NULL,  -- battery_energy_imported_from_grid
             read_at REAL NOT NULL)""",
        # Each local calendar day read: when, how many half-hours lacked rows, and what was odd.
        """CREATE TABLE battery_days (
             day TEXT PRIMARY KEY,
             reads TEXT NOT NULL,  -- [Unix time, ...]
             missing INTEGER NOT NULL,
             note TEXT NOT NULL DEFAULT '')""",
    ),
}
ACCESS_TOKEN_BOUND = 12 * 3600.0  # Fleet access tokens last about 8 hours


@dataclass(frozen=True)
class OwnTariff:
    """The tariff a site had before the scheduler's first post to it."""

    tariff: dict[str, Any] | None  # None: no tariff of the user's to put back (``note`` says why)
    kept_at: float
    note: str = ""


@dataclass(frozen=True)
class Pause:
    """The scheduler is paused for this config (cron runs post nothing of ours) until --resume."""

    since: float
    why: str
    put_back: bool = False  # the user's own tariff waits to be posted back (Tesla asked us to wait)


class Store:
    """An open store. Use ``Store.open`` (or iops.app.records, which opens it on first use)."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self.db = connection
        self.path = path

    @classmethod
    def open(cls, path: Path, *, create: bool = True) -> Store | None:
        """The store at ``path``, made (mode 0600) when missing and ``create``; else None when missing."""
        try:
            info = path.stat()
        except FileNotFoundError:
            if not create:
                return None
            _create(path)
        except OSError as err:
            raise StoreUnusable(path, err.strerror or str(err)) from err
        else:
            if not stat.S_ISREG(info.st_mode):
                raise StoreUnusable(path, "it is not a file")
            if info.st_mode & 0o077:
                with contextlib.suppress(OSError):
                    path.chmod(0o600)  # it holds a token: readable by its owner only
        import sqlite3

        try:
            connection = sqlite3.connect(path, timeout=10, isolation_level=None)
        except sqlite3.Error as err:
            raise StoreUnusable(path, str(err)) from err
        store = cls(connection, path)
        try:
            store._upgrade()
        except BaseException:
            connection.close()
            raise
        return store

    def close(self) -> None:
        self.db.close()

    # ---- transactions and errors --------------------------------------------------------------

    @contextlib.contextmanager
    def _guard(self, *, writing: bool = False) -> Iterator[None]:
        import sqlite3

        try:
            yield
        except sqlite3.DatabaseError as err:  # corruption, not a database, a full disk, read-only
            with contextlib.suppress(sqlite3.Error):
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
            raise StoreUnusable(self.path, str(err), writing=writing and _is_write_failure(err)) from err

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One transaction: all of it is kept, or none."""
        with self._guard(writing=True):
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def _one(self, sql: str, *args: Any) -> tuple[Any, ...] | None:
        with self._guard():
            row: tuple[Any, ...] | None = self.db.execute(sql, args).fetchone()
            return row

    def _upgrade(self) -> None:
        with self._guard():
            version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
            tables = self.db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if version == 0 and tables:
            raise StoreUnusable(self.path, "it holds a database that is not this program's")
        if version > SCHEMA_VERSION:
            raise StoreUnusable(self.path, f"it was written by a newer version (schema {version}); upgrade this one")
        for step in range(version + 1, SCHEMA_VERSION + 1):
            with self.transaction() as db:
                for statement in MIGRATIONS[step]:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {int(step)}")

    # ---- proving it writable ----------------------------------------------------------------

    def ready(self) -> None:
        """A committed write: proves the file and the disk take writes (asked before a token rotates)."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('written_at', ?)", (str(time.time()),))

    # ---- the Fleet token chain --------------------------------------------------------------

    def fleet_chain(self, now: float) -> FleetChain | None:
        row = self._one("SELECT seed, refresh_token, access_token, expires_at FROM fleet_chain WHERE id = 1")
        if row is None:
            return None
        seed, refresh, access, expires = row
        if not isinstance(expires, int | float) or not math.isfinite(expires) or expires > now + ACCESS_TOKEN_BOUND:
            access, expires = "", 0.0  # an expiry that is not a sane time: renew the access token
        return FleetChain(
            seed=str(seed), refresh_token=str(refresh), access_token=str(access), expires_at=float(expires)
        )

    def keep_fleet_chain(self, chain: FleetChain) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO fleet_chain (id, seed, refresh_token, access_token, expires_at, kept_at) "
                "VALUES (1, ?, ?, ?, ?, ?)",
                (chain.seed, chain.refresh_token, chain.access_token, chain.expires_at, time.time()),
            )

    # ---- the user's own tariff -----------------------------------------------------------------

    def own_tariff(self, site_id: str) -> OwnTariff | None:
        row = self._one("SELECT tariff, kept_at, note FROM own_tariff WHERE site_id = ?", site_id)
        if row is None:
            return None
        try:
            tariff = json.loads(row[0]) if row[0] is not None else None
        except ValueError as err:
            raise StoreUnusable(self.path, f"the kept tariff of site {site_id} is not JSON") from err
        return OwnTariff(tariff if isinstance(tariff, dict) else None, float(row[1]), str(row[2]))

    def keep_own_tariff(self, site_id: str, own: OwnTariff) -> bool:
        """Keep a site's own tariff unless one is kept already (the first one seen is the user's)."""
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO own_tariff (site_id, tariff, note, kept_at) VALUES (?, ?, ?, ?)",
                (
                    site_id,
                    None if own.tariff is None else json.dumps(own.tariff, sort_keys=True),
                    own.note,
                    own.kept_at,
                ),
            )
            return cursor.rowcount == 1

    # ---- the pause ----------------------------------------------------------------------------

    def pause(self) -> Pause | None:
        row = self._one("SELECT since, why, put_back FROM pause WHERE id = 1")
        return Pause(float(row[0]), str(row[1]), bool(row[2])) if row else None

    def set_pause(self, pause: Pause) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO pause (id, since, why, put_back) VALUES (1, ?, ?, ?)",
                (pause.since, pause.why, int(pause.put_back)),
            )

    def clear_pause(self) -> bool:
        with self.transaction() as db:
            return db.execute("DELETE FROM pause").rowcount > 0

    # ---- the history: what the Powerwall was told ---------------------------------------------

    def record_told(self, version: ToldVersion) -> None:
        """Keep an accepted tariff (written once per post: a quiet day writes nothing)."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO told (accepted_at, kind, digest, grid, prices, reasons) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    version.at,
                    version.kind,
                    version.digest,
                    "\n".join(version.grid),
                    json.dumps({k: list(v) for k, v in version.prices.items()}, sort_keys=True),
                    json.dumps(dict(version.reasons), sort_keys=True),
                ),
            )

    def told_between(self, start: float, end: float) -> list[ToldVersion]:
        """The versions live from ``start`` to ``end``: the last accepted before start, and those after it."""
        with self._guard():
            rows = self.db.execute(
                "SELECT accepted_at, kind, digest, grid, prices, reasons FROM told WHERE accepted_at >= "
                "COALESCE((SELECT max(accepted_at) FROM told WHERE accepted_at <= ?), 0) AND accepted_at < ? "
                "ORDER BY accepted_at",
                (start, end),
            ).fetchall()
        out = []
        for at, kind, digest, grid, prices, reasons in rows:
            try:
                out.append(
                    ToldVersion(
                        at=float(at),
                        kind=str(kind),
                        digest=str(digest),
                        grid=tuple(str(grid).split("\n")),
                        prices={k: (float(v[0]), float(v[1])) for k, v in json.loads(prices).items()},
                        reasons={str(k): str(v) for k, v in json.loads(reasons).items()},
                    )
                )
            except (ValueError, TypeError, IndexError, AttributeError) as err:
                raise StoreUnusable(self.path, f"a told tariff of {at} cannot be read ({type(err).__name__})") from err
        return out

    def history_began(self) -> float | None:
        """When the first tariff of the history was accepted (Unix time), if any."""
        row = self._one("SELECT min(accepted_at) FROM told")
        return float(row[0]) if row and row[0] is not None else None

    def last_told_digest(self) -> str:
        row = self._one("SELECT digest FROM told ORDER BY accepted_at DESC LIMIT 1")
        return str(row[0]) if row else ""

    def reasons_of(self, digest: str) -> dict[str, str]:
        """The reasons last kept with a tariff (a repost of it carries the same ones)."""
        row = self._one("SELECT reasons FROM told WHERE digest = ? ORDER BY accepted_at DESC LIMIT 1", digest)
        try:
            return {str(k): str(v) for k, v in json.loads(row[0]).items()} if row else {}
        except (ValueError, AttributeError):
            return {}

    def record_facts(self, facts: Mapping[str, str], now: float) -> int:
        """Keep each half-hour's dispatch fact where it changed; how many rows were written."""
        if not facts:
            return 0
        with self.transaction() as db:
            known = dict(
                db.execute(
                    f"SELECT start, fact FROM slot_facts WHERE start IN ({','.join('?' * len(facts))})",  # noqa: S608
                    tuple(facts),
                ).fetchall()
            )
            changed = [(start, fact, now) for start, fact in facts.items() if known.get(start) != fact]
            db.executemany("INSERT OR REPLACE INTO slot_facts (start, fact, updated_at) VALUES (?, ?, ?)", changed)
        return len(changed)

    def facts_between(self, start: str, end: str) -> dict[str, str]:
        with self._guard():
            rows = self.db.execute("SELECT start, fact FROM slot_facts WHERE start >= ? AND start < ?", (start, end))
            return {str(k): str(v) for k, v in rows.fetchall()}

    def record_dispatches(self, data: Mapping[str, Any], now: float) -> bool:
        """Keep Octopus's dispatch answer when it differs from the last one kept."""
        text = json.dumps(data, sort_keys=True)
        with self.transaction() as db:
            last = db.execute("SELECT data FROM dispatches_seen ORDER BY seen_at DESC LIMIT 1").fetchone()
            if last is not None and last[0] == text:
                return False
            db.execute("INSERT OR REPLACE INTO dispatches_seen (seen_at, data) VALUES (?, ?)", (now, text))
        return True

    # ---- the history: what Octopus settled ---------------------------------------------------

    def record_settlement(self, day: str, rows: Sequence[Settled], read_at: float, status: str, note: str = "") -> None:
        """One read of one allowance day: the half-hours that are new or changed since the last read (a
        re-read that finds the same bill writes only the day's read time), and the day's status."""
        fresh = [
            (
                row.start.isoformat(),
                read_at,
                row.kwh,
                json.dumps([[ln.label, ln.kwh, ln.pence_per_kwh] for ln in row.lines]),
            )
            for row in rows
        ]
        with self.transaction() as db:
            if fresh:
                kept = {
                    start: (kwh, lines)
                    for start, kwh, lines in db.execute(
                        "SELECT s.start, s.kwh, s.lines FROM settlement s JOIN (SELECT start, max(read_at) AS newest "
                        "FROM settlement WHERE start >= ? AND start <= ? GROUP BY start) n "
                        "ON s.start = n.start AND s.read_at = n.newest",
                        (min(f[0] for f in fresh), max(f[0] for f in fresh)),
                    )
                }
                changed = [f for f in fresh if kept.get(f[0]) != (f[2], f[3])]
                db.executemany(
                    "INSERT OR REPLACE INTO settlement (start, read_at, kwh, lines) VALUES (?, ?, ?, ?)", changed
                )
            found = db.execute("SELECT reads FROM settled_days WHERE day = ?", (day,)).fetchone()
            reads = [*json.loads(found[0]), read_at] if found else [read_at]
            db.execute(
                "INSERT OR REPLACE INTO settled_days (day, reads, status, note) VALUES (?, ?, ?, ?)",
                (day, json.dumps(reads), status, note),
            )

    def settled_day(self, day: str) -> tuple[list[float], str, str] | None:
        """A day's reads (Unix times), status and note; None when never read."""
        row = self._one("SELECT reads, status, note FROM settled_days WHERE day = ?", day)
        if row is None:
            return None
        try:
            return [float(r) for r in json.loads(row[0])], str(row[1]), str(row[2])
        except (ValueError, TypeError) as err:
            raise StoreUnusable(self.path, f"the reads of {day} cannot be read") from err

    def settled_between(self, start: str, end: str) -> dict[str, Settled]:
        """The newest read of each half-hour from start to end."""
        with self._guard():
            rows = self.db.execute(
                "SELECT s.start, s.kwh, s.lines FROM settlement s JOIN (SELECT start, max(read_at) AS newest "
                "FROM settlement WHERE start >= ? AND start < ? GROUP BY start) n "
                "ON s.start = n.start AND s.read_at = n.newest",
                (start, end),
            ).fetchall()
        out = {}
        for start_text, kwh, lines in rows:
            try:
                parsed = tuple(
                    Line(None if label is None else str(label), float(k), None if p is None else float(p))
                    for label, k, p in json.loads(lines)
                )
                out[str(start_text)] = Settled(datetime.fromisoformat(start_text), float(kwh), parsed)
            except (ValueError, TypeError) as err:
                raise StoreUnusable(self.path, f"the settlement of {start_text} cannot be read") from err
        return out

    def record_battery(
        self, day: str, half_hours: Sequence[HalfHourEnergy], read_at: float, missing: int, note: str = ""
    ) -> None:
        """One read of a local day's energy history: the half-hours new or changed, and the day's state."""
        with self.transaction() as db:
            if half_hours:
                lo, hi = half_hours[0].start.isoformat(), half_hours[-1].start.isoformat()
                kept = {
                    str(start): (float(d), float(g))
                    for start, d, g in db.execute(
                        "SELECT start, discharge_wh, grid_charge_wh FROM battery WHERE start >= ? AND start <= ?",
                        (lo, hi),
                    )
                }
                db.executemany(
                    "INSERT OR REPLACE INTO battery (start, discharge_wh, grid_charge_wh, read_at) VALUES (?, ?, ?, ?)",
                    [
                        (h.start.isoformat(), h.discharge_wh, h.grid_charge_wh, read_at)
                        for h in half_hours
                        if kept.get(h.start.isoformat()) != (h.discharge_wh, h.grid_charge_wh)
                    ],
                )
            found = db.execute("SELECT reads FROM battery_days WHERE day = ?", (day,)).fetchone()
            reads = [*json.loads(found[0]), read_at] if found else [read_at]
            db.execute(
                "INSERT OR REPLACE INTO battery_days (day, reads, missing, note) VALUES (?, ?, ?, ?)",
                (day, json.dumps(reads), missing, note),
            )

    def battery_day(self, day: str) -> tuple[list[float], int, str] | None:
        """A local day's energy reads (Unix times), its half-hours without all their rows, and its note."""
        row = self._one("SELECT reads, missing, note FROM battery_days WHERE day = ?", day)
        if row is None:
            return None
        try:
            return [float(r) for r in json.loads(row[0])], int(row[1]), str(row[2])
        except (ValueError, TypeError) as err:
            raise StoreUnusable(self.path, f"the energy reads of {day} cannot be read") from err

    def battery_between(self, start: str, end: str) -> dict[str, HalfHourEnergy]:
        with self._guard():
            rows = self.db.execute(
                "SELECT start, discharge_wh, grid_charge_wh FROM battery WHERE start >= ? AND start < ?", (start, end)
            ).fetchall()
        try:
            return {str(a): HalfHourEnergy(datetime.fromisoformat(a), float(d), float(g)) for a, d, g in rows}
        except (ValueError, TypeError) as err:
            raise StoreUnusable(self.path, "the battery history cannot be read") from err

    def prune(self, before: float) -> int:
        """Drop history older than ``before`` (Unix time), keeping the version live at that moment."""
        cutoff = datetime.fromtimestamp(before, UTC).isoformat()
        with self.transaction() as db:
            keep = db.execute("SELECT max(accepted_at) FROM told WHERE accepted_at <= ?", (before,)).fetchone()[0]
            dropped = db.execute(
                "DELETE FROM told WHERE accepted_at < ?", (keep if keep is not None else before,)
            ).rowcount
            dropped += db.execute("DELETE FROM slot_facts WHERE start < ?", (cutoff,)).rowcount
            dropped += db.execute("DELETE FROM dispatches_seen WHERE seen_at < ?", (before,)).rowcount
            dropped += db.execute("DELETE FROM settlement WHERE start < ?", (cutoff,)).rowcount
            day = datetime.fromtimestamp(before, UTC).date().isoformat()
            dropped += db.execute("DELETE FROM settled_days WHERE day < ?", (day,)).rowcount
            dropped += db.execute("DELETE FROM battery WHERE start < ?", (cutoff,)).rowcount
            dropped += db.execute("DELETE FROM battery_days WHERE day < ?", (day,)).rowcount
        return dropped

    # ---- taking over the records an older version kept in the cache -----------------------------

    def take_over(self, legacy: Mapping[str, Any]) -> list[str]:
        """Move the 1.1 cache's durable sections in, where the store has nothing yet; what was moved."""
        moved: list[str] = []
        with self.transaction() as db:
            chain = _legacy_chain(legacy.get("tesla_auth"))
            if chain is not None and db.execute("SELECT 1 FROM fleet_chain").fetchone() is None:
                db.execute(
                    "INSERT INTO fleet_chain (id, seed, refresh_token, access_token, expires_at, kept_at) "
                    "VALUES (1, ?, ?, ?, ?, ?)",
                    (chain.seed, chain.refresh_token, chain.access_token, chain.expires_at, time.time()),
                )
                moved.append("the Fleet API token chain")
            originals = legacy.get("originals")
            for site, entry in originals.items() if isinstance(originals, dict) else []:
                if not isinstance(entry, dict):
                    continue
                tariff, kept_at = entry.get("tariff"), entry.get("kept_at")
                kept = float(kept_at) if isinstance(kept_at, int | float) and math.isfinite(kept_at) else time.time()
                text = json.dumps(tariff, sort_keys=True) if isinstance(tariff, dict) else None
                cursor = db.execute(
                    "INSERT OR IGNORE INTO own_tariff (site_id, tariff, kept_at) VALUES (?, ?, ?)",
                    (str(site), text, kept),
                )
                if cursor.rowcount:
                    moved.append(f"the own tariff of site {site}")
            paused = legacy.get("paused")
            if isinstance(paused, dict) and db.execute("SELECT 1 FROM pause").fetchone() is None:
                since = paused.get("since")
                when = float(since) if isinstance(since, int | float) and math.isfinite(since) else time.time()
                db.execute(
                    "INSERT INTO pause (id, since, why) VALUES (1, ?, ?)", (when, str(paused.get("why") or "--restore"))
                )
                moved.append("the pause")
        return moved


def _legacy_chain(raw: Any) -> FleetChain | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("refresh_token"), str) or not raw["refresh_token"]:
        return None
    expires = raw.get("expires_at")
    return FleetChain(
        seed=str(raw.get("seed") or ""),
        refresh_token=raw["refresh_token"],
        access_token=str(raw.get("access_token") or "") if isinstance(raw.get("access_token"), str) else "",
        expires_at=float(expires) if isinstance(expires, int | float) and math.isfinite(expires) else 0.0,
    )


def _create(path: Path) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as err:
        raise StoreUnusable(path, err.strerror or str(err), writing=True) from err
    os.close(fd)


def _is_write_failure(err: Exception) -> bool:
    text = str(err).lower()
    return any(word in text for word in ("readonly", "read-only", "disk", "full", "unable to open", "i/o"))
