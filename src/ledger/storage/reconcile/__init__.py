"""Reconciliation's storage: its tables, queries and the store's methods."""
