"""Consensus protocols: keep what independent estimations agree on (CTF, picking, alignment)."""
