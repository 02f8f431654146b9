"""The shell: config, state, logging, and one module per command (the cron run, --check, --status,
--restore/--resume, the listings, the site helper). Uses services and core; nothing imports it."""
