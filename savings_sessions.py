#!/usr/bin/env python3
"""List upcoming saving sessions (Power Down) and which ones you joined.

Usage: .venv/bin/python savings_sessions.py [config.txt]
"""

import sys

from iops.app.listings import sessions_main as main

if __name__ == "__main__":
    sys.exit(main())
