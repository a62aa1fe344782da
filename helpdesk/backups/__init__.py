"""Consistent copies of the database, and putting one back."""
