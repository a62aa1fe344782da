"""Importing customers and orders from the CSV exports of EC platforms."""
