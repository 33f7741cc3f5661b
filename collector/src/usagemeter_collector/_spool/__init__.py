"""The durable spool: checksummed segment files of records, and the state that must survive a restart."""
