"""``cvm assess``: how much the company can afford to spend on CRM."""
