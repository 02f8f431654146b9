"""Kraken GraphQL documents: constants, one per shape; values always travel as ``variables``.

Each selection is written once and shared by the queries below.
"""

from __future__ import annotations

from collections.abc import Mapping

FREE_ELECTRICITY_CAMPAIGN = "free_electricity"

TOKEN_MUTATION = """
mutation ObtainToken($input: ObtainJSONWebTokenInput!) {
  obtainKrakenToken(input: $input) { token refreshToken refreshExpiresIn payload }
}
"""

# Each selection is written once and shared by the queries below: as GraphQL fragments where the
# type name is documented, and as one text constant for devices, whose interface name is not.
DEVICES_FIELD = "devices(accountNumber: $accountNumber) { id deviceType status { current currentState } }"
DEVICES_QUERY = f"""
query Devices($accountNumber: String!) {{
  {DEVICES_FIELD}
}}
"""
PLANNED_FRAGMENT = """
fragment Planned on SmartFlexDispatch { start end type }
"""
COMPLETED_FRAGMENT = """
fragment Completed on UpsideDispatchType { start end delta meta { source location } }
"""
POWER_UPS_FRAGMENT = """
fragment CampaignEvents on CFCampaignEventConnectionTypeConnection {
  edges { node { code name startAt endAt isEventParticipant } }
}
"""
# The order of campaign events is not documented, so both ends of the list are asked for: an
# account with a long history still sees its newest events whichever way the list runs.
POWER_UPS_FIELDS = """
  powerUpsFirst: customerFlexibilityCampaignEvents(
    accountNumber: $accountNumber, campaignSlug: $campaignSlug, supplyPointIdentifier: $mpan, first: 20
  ) { ...CampaignEvents }
  powerUpsLast: customerFlexibilityCampaignEvents(
    accountNumber: $accountNumber, campaignSlug: $campaignSlug, supplyPointIdentifier: $mpan, last: 20
  ) { ...CampaignEvents }
"""
MAX_EVS = 4  # Octopus allows several EVs per account; more than this is not seen in practice


def _dispatch_query(evs: int, *, power_ups: bool) -> str:
    """The one request of a polling run, for ``evs`` devices (aliases ev0, ev1 ...)."""
    params = ["$accountNumber: String!", *(f"$device{i}: String!" for i in range(evs))]
    fields = [
        f"  {DEVICES_FIELD}",
        *(f"  ev{i}: flexPlannedDispatches(deviceId: $device{i}) {{ ...Planned }}" for i in range(evs)),
        "  completedDispatches(accountNumber: $accountNumber) { ...Completed }",
    ]
    fragments = [COMPLETED_FRAGMENT, *([PLANNED_FRAGMENT] if evs else [])]
    if power_ups:
        params += ["$mpan: String!", "$campaignSlug: String!"]
        fields.append(POWER_UPS_FIELDS.rstrip("\n"))
        fragments.append(POWER_UPS_FRAGMENT)
    header = f"query Dispatches({', '.join(params)}) {{"
    return "\n".join([header, *fields, "}", *(f.strip() for f in fragments)]) + "\n"


# Constants, one per shape; values always travel as variables.
DISPATCH_QUERIES: Mapping[tuple[int, bool], str] = {
    (evs, power_ups): _dispatch_query(evs, power_ups=power_ups)
    for evs in range(MAX_EVS + 1)
    for power_ups in (False, True)
}

POWER_UPS_QUERY = (
    """
query PowerUps($accountNumber: String!, $mpan: String!, $campaignSlug: String!) {"""
    + POWER_UPS_FIELDS
    + "}\n"
    + POWER_UPS_FRAGMENT
)

# Agreements that have ended are left out; future ones are kept so that a pending switch takes
# effect at its start even while this answer is cached.
ACCOUNT_QUERY = """
query Account($accountNumber: String!) {
  account(accountNumber: $accountNumber) {
    electricityAgreements(active: true) {
      meterPoint {
        mpan
        direction
        agreements(includeInactive: false) {
          validFrom validTo tariff { ... on TariffType { productCode tariffCode } }
        }
      }
    }
  }
}
"""

# Saving sessions moved to the backend host in February 2026; it wants the raw token.
SAVING_SESSIONS_QUERY = """
query SavingSessions($accountNumber: String!) {
  savingSessions {
    events(includeDev: false) {
      id code rewardPerKwhInOctoPoints startAt endAt eventType targetRegion { regionId }
    }
    account(accountNumber: $accountNumber) {
      signedUpMeterPoint { regionId }
      hasJoinedCampaign
      joinedEvents { eventId startAt endAt }
    }
  }
}
"""

JOIN_SAVING_SESSION_MUTATION = """
mutation JoinSavingSession($accountNumber: String!, $eventCode: String!) {
  joinSavingSessionsEvent(input: {accountNumber: $accountNumber, eventCode: $eventCode}) { joinedEventCodes }
}
"""

# The import meter's half-hourly settlement (octopus_settlement.md §6.2): measurements hang on the
# property; the one whose meter points hold the import MPAN is ours. Paged with ``after``.
MEASUREMENTS_QUERY = """
query Measurements(
  $accountNumber: String!, $mpan: String!, $from: DateTime!, $to: DateTime!, $first: Int!, $after: String
) {
  account(accountNumber: $accountNumber) {
    properties {
      id
      electricityMeterPoints { mpan }
      measurements(
        startAt: $from, endAt: $to, first: $first, after: $after,
        utilityFilters: [{electricityFilters: {
          readingFrequencyType: THIRTY_MIN_INTERVAL, readingDirection: CONSUMPTION, marketSupplyPointId: $mpan
        }}]
      ) {
        pageInfo { hasNextPage endCursor }
        edges {
          node {
            value
            unit
            ... on IntervalMeasurementType { startAt endAt }
            metaData { statistics { type label value costInclTax { estimatedAmount pricePerUnit { amount } } } }
          }
        }
      }
    }
  }
}
"""
