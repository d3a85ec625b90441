"""Reports and charts built from analysis runs (an interface layer)."""
