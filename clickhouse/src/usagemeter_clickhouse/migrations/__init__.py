"""The schema's migrations, applied in version order and recorded in ``usagemeter_schema_migrations``.

A version number is never reused or renumbered once released: installed databases record them
in their ledger. There is no 0007: the number was skipped when 0008 was written and no release
ever had one. The runner needs increasing versions, not contiguous ones.
"""
