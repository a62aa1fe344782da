"""The HTML side: templates, languages, CSRF, security headers, and the page wiring."""
