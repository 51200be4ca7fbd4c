"""``nightshift inventory FILE``: which traffic has no person waiting on it, and what batching it would save.

records (read and validate rows) -> classify (verdict and evidence) -> savings (monthly projection)
-> inventory (per feature, both together) -> render (table, CSV, JSON) and chart (HTML + SVG);
cli.main is the command. docs/inventory.md describes the input and the rules.
"""
