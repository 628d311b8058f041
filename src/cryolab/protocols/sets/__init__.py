"""Generic set operations: import a table, subset, merge, split, join."""
