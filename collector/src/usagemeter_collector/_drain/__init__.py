"""Draining, the last stage: sealed spool segments are inserted into ClickHouse, then released.

``writer`` inserts one segment after another from its own thread, ``read_ahead`` reads the next one while
the current one is inserted, ``landing`` hands metrics requests to ClickHouse's landing tables as
length-delimited protobuf, and ``beacon`` records in ClickHouse that inserts are failing.
"""
