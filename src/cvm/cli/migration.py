"""``cvm migration``: how customers move between tiers, stages and segments."""
