"""Delivering replies: what a sender needs is read from the message, its ticket, inbox and
customer (``service``), and the outbox is worked as a leased queue (``tasks``).

The ticket service only queues into the outbox; this package reads tickets to send what was
queued, so the dependency points one way: ``delivery`` -> ``tickets``, ``outbox``.
"""
