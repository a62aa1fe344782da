"""Contact-center helpdesk: every channel a shop talks on, merged into tickets operators work live."""
