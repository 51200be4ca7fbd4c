"""The ledger: every statement on ``nightshift.*``, and its versioned schema migrations."""
