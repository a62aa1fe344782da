"""CSV uploads from the admin pages, imported in the background."""
