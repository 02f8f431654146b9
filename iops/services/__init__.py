"""One client per outside service (Octopus Kraken, Tesla, MQTT) and the one HTTP entry point.

Clients take their settings and their own part of the state, and hand back a new part; they know
nothing of the run. They may import the core (records, errors), never the app."""
