"""Pure domain: money in minor units, the order state machine, normalized events (no I/O)."""
