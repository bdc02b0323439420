"""Reconciliation: statements from banks and processors matched line by
line against the journal, every difference an exception with a class and a
severity. `model` has the records, `statements` the file parsers, `matching`
the passes (pure), `cases` the use cases over the store (`ports`)."""
