"""Jinja model-card templates of the built-in families. The one source is the checkout's top-level `model_cards/`;
pyproject.toml maps it into the package as `hf_dgm.model_cards` (read with importlib.resources)."""
