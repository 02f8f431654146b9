#!/usr/bin/env python3
"""List the Tesla energy sites on your account; optionally save the Powerwall's ID in the config.

Usage: .venv/bin/python get_site_id.py [config.txt] [--write] [--site ID]
"""

import sys

from iops.app.site_id import main

if __name__ == "__main__":
    sys.exit(main())
