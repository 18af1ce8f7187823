"""Shipped recipes, one TOML file per architecture (installed as the package `dreamlab.recipes`)."""
