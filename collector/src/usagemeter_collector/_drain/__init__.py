"""Draining: sealed spool segments read ahead and inserted into ClickHouse."""
