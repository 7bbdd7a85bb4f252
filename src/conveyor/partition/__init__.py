"""The partition state machine (sans-IO) and its log records."""
