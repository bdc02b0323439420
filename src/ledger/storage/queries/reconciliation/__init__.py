"""Reconciliation's tables and queries."""
