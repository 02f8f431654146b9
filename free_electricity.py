#!/usr/bin/env python3
"""List upcoming Power Up (free electricity) events.

Usage: .venv/bin/python free_electricity.py [config.txt]
"""

import sys

from iops.app.listings import power_ups_main as main

if __name__ == "__main__":
    sys.exit(main())
