"""What supervisors watch: each operator's load and pace, the queue, live."""
