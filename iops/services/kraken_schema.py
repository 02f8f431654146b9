"""Know before Octopus removes a field: ask Kraken's live schema (GraphQL introspection) about every
type and field the tool's queries use, and report those deprecated or missing. Used by --check only.

The selections are written out here as trees; a test checks them against the query documents in
kraken_queries, so the two cannot drift apart. Nested types are found by following the field types
the server itself reports, so no type name the docs do not give is guessed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# A selection tree: field name -> its own selection ({} for a leaf); "... on T" -> a selection on T.
Tree = Mapping[str, "Tree"]

LEAF: Tree = {}
_STATUS: Tree = {"current": LEAF, "currentState": LEAF}
_EVENT: Tree = {k: LEAF for k in ("code", "name", "startAt", "endAt", "isEventParticipant")}
_STATISTIC: Tree = {
    "type": LEAF,
    "label": LEAF,
    "value": LEAF,
    "costInclTax": {"estimatedAmount": LEAF, "pricePerUnit": {"amount": LEAF}},
}
MAIN_USED: Mapping[str, Tree] = {
    "Query": {
        "devices": {"id": LEAF, "deviceType": LEAF, "status": _STATUS},
        "flexPlannedDispatches": {"start": LEAF, "end": LEAF, "type": LEAF},
        "completedDispatches": {
            "start": LEAF,
            "end": LEAF,
            "delta": LEAF,
            "meta": {"source": LEAF, "location": LEAF},
        },
        "customerFlexibilityCampaignEvents": {"edges": {"node": _EVENT}},
        "account": {
            "electricityAgreements": {
                "meterPoint": {
                    "mpan": LEAF,
                    "direction": LEAF,
                    "agreements": {
                        "validFrom": LEAF,
                        "validTo": LEAF,
                        "tariff": {"... on TariffType": {"productCode": LEAF, "tariffCode": LEAF}},
                    },
                }
            },
            "properties": {
                "id": LEAF,
                "electricityMeterPoints": {"mpan": LEAF},
                "measurements": {
                    "pageInfo": {"hasNextPage": LEAF, "endCursor": LEAF},
                    "edges": {
                        "node": {
                            "value": LEAF,
                            "unit": LEAF,
                            "... on IntervalMeasurementType": {"startAt": LEAF, "endAt": LEAF},
                            "metaData": {"statistics": _STATISTIC},
                        }
                    },
                },
            },
        },
    },
    "Mutation": {"obtainKrakenToken": {k: LEAF for k in ("token", "refreshToken", "refreshExpiresIn", "payload")}},
}
BACKEND_USED: Mapping[str, Tree] = {
    "Query": {
        "savingSessions": {
            "events": {
                **{k: LEAF for k in ("id", "code", "rewardPerKwhInOctoPoints", "startAt", "endAt", "eventType")},
                "targetRegion": {"regionId": LEAF},
            },
            "account": {
                "signedUpMeterPoint": {"regionId": LEAF},
                "hasJoinedCampaign": LEAF,
                "joinedEvents": {"eventId": LEAF, "startAt": LEAF, "endAt": LEAF},
            },
        }
    },
    "Mutation": {"joinSavingSessionsEvent": {"joinedEventCodes": LEAF}},
}

BATCH = 8  # types asked for per request
_TYPE_REF = "name kind ofType { name kind ofType { name kind ofType { name kind } } }"
TYPES_QUERY = (
    "query SchemaCheck("
    + ", ".join(f"$t{i}: String!" for i in range(BATCH))
    + ") {\n"
    + "\n".join(f"  t{i}: __type(name: $t{i}) {{ ...TypeFields }}" for i in range(BATCH))
    + "\n}\nfragment TypeFields on __Type {\n  name\n  fields(includeDeprecated: true) {\n"
    + f"    name isDeprecated deprecationReason type {{ {_TYPE_REF} }}\n  }}\n}}\n"
)


@dataclass(frozen=True)
class SchemaProblem:
    where: str  # Type.field, or Type
    deprecated: bool  # False: missing
    reason: str = ""


def _named(ref: Any) -> str | None:
    """The named type under NON_NULL and LIST wrappers."""
    while isinstance(ref, dict):
        if ref.get("name"):
            return str(ref["name"])
        ref = ref.get("ofType")
    return None


def walk(
    roots: Mapping[str, Tree], fetch: Callable[[Sequence[str]], Mapping[str, Any]]
) -> tuple[list[SchemaProblem], int]:
    """Follow the trees through the schema, a level at a time (``fetch`` maps type names to their
    ``__type`` answers, None for a type the server does not have). The problems and fields checked."""
    problems: list[SchemaProblem] = []
    checked = 0
    level: list[tuple[str, Tree]] = list(roots.items())
    while level:
        names = list(dict.fromkeys(name for name, _ in level))
        types = fetch(names)
        following: list[tuple[str, Tree]] = []
        for type_name, tree in level:
            described = types.get(type_name)
            if not isinstance(described, dict):
                problems.append(SchemaProblem(type_name, deprecated=False))
                continue
            fields = {f.get("name"): f for f in described.get("fields") or [] if isinstance(f, dict)}
            for key, subtree in tree.items():
                if key.startswith("... on "):
                    following.append((key.removeprefix("... on "), subtree))
                    continue
                checked += 1
                field = fields.get(key)
                if field is None:
                    problems.append(SchemaProblem(f"{type_name}.{key}", deprecated=False))
                    continue
                if field.get("isDeprecated"):
                    reason = str(field.get("deprecationReason") or "no reason given")
                    problems.append(SchemaProblem(f"{type_name}.{key}", deprecated=True, reason=reason))
                inner = _named(field.get("type"))
                if subtree and inner:
                    following.append((inner, subtree))
        level = following
    return problems, checked


def fetch_types(graphql: Callable[[str, Mapping[str, Any]], Mapping[str, Any]]) -> Callable[[Sequence[str]], Any]:
    """A ``fetch`` for ``walk`` over one host: BATCH types a request, values as variables."""

    def fetch(names: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i in range(0, len(names), BATCH):
            chunk = list(names[i : i + BATCH])
            padded = chunk + [chunk[-1]] * (BATCH - len(chunk))
            data = graphql(TYPES_QUERY, {f"t{k}": name for k, name in enumerate(padded)})
            for k, name in enumerate(chunk):
                out[name] = data.get(f"t{k}")
        return out

    return fetch
