"""The program's name and version, for user agents and Home Assistant's device card."""

NAME = "io-powerwall-scheduler"
VERSION = "1.1.0"
USER_AGENT = f"{NAME}/{VERSION}"
