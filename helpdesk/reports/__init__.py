"""What supervisors watch: the live board, and reports over days folded from the event log."""
