"""Readers of source projects; each owns its catalog."""
