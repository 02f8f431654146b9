#!/usr/bin/env python3
"""IO Powerwall Scheduler: keep a Powerwall's Tesla tariff in step with Intelligent Octopus Go.

Run from cron every minute:  .venv/bin/python io_powerwall_scheduler.py /path/to/config.txt
The code lives in the iops package; see README.md and ARCHITECTURE.md.
"""

import sys

from iops.app.cli import main

if __name__ == "__main__":
    sys.exit(main())
