"""Decisions: the playbook, target lists, uplift, cross-sell and the CRM assessment."""
