"""The cvm command line."""
