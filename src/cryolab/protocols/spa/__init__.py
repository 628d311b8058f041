"""Single-particle analysis protocols: picking, extraction and what follows."""
