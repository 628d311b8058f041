"""Simulation protocols: synthetic data sets with their ground truth, to validate processing."""
