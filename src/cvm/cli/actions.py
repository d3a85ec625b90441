"""``cvm actions``: the playbook's actions and budgeted target lists."""
