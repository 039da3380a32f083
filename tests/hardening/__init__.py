"""Issue 13 over real sockets and processes: floods, freed rooms, expiring tokens."""
