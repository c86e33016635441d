"""Jinja model-card templates of the built-in families (package data, read with importlib.resources)."""
