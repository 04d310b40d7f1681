"""Figures (static, headless-safe) and widgets (ipywidgets, imported lazily)."""
