"""CSV exports a shop owns: tickets, messages, calls, customers, the audit log, report tables."""
