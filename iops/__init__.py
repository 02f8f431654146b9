"""IO Powerwall Scheduler: keeps a Powerwall's Tesla tariff in step with Intelligent Octopus Go.

Layers, imported one way only (app -> services -> core; see ARCHITECTURE.md):
  core      pure decisions: no I/O, no clock reads
  services  one client per outside service (Octopus, Tesla, MQTT); knows nothing of the run
  app       the shell: config, state, logging and one module per command
"""

NAME = "io-powerwall-scheduler"
VERSION = "1.2.0"
USER_AGENT = f"{NAME}/{VERSION}"
