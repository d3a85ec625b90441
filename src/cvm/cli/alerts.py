"""``cvm alerts``: early warnings when valuable customers slip."""
