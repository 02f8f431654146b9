"""Bundled sample data: recorded-style Octopus answers for --sample, and the config template."""
