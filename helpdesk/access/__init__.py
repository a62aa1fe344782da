"""Where staff may sign in from: the IP allow-list."""
