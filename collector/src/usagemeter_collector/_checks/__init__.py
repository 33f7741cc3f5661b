"""Checking, the second stage: what of a request may be stored, and in which form.

``rule`` states the ``feature.usage`` rule and its reasons once. A metrics request takes one of three
paths, whose choice is the table in ``usagemeter_collector._ingest``: the ``lean_pass`` (with the
``bulk_points`` check), checked ``in_place`` (kept as protobuf), or the ``row_path``. ``cumulative`` turns
monotonic cumulative sums into deltas on the way, a check because a point it cannot convert is refused;
``traces`` turns spans into rows; ``attributes`` renders attribute values as the tables keep them; a
check's outcome is an ``outcome.Decoded``. What the checks keep is what the spool's record format
(``usagemeter_collector._spool.records``) stores.
"""
