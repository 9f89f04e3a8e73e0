"""Placeholder: the nestq pytest plugin."""
