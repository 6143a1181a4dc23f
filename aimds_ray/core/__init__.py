"""Algorithms and the embedded pipeline. Nothing in this package imports Ray."""
