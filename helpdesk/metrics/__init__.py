"""Prometheus metrics: request latency, queues, sockets, outbox backlog, webhook failures."""
