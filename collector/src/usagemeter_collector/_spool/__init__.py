"""The durable spool, the third stage: a request is acknowledged once its record is fsync'd here.

``spool`` is the spool itself and ``group_commit`` its append thread; ``appending`` is the segment being
appended to, ``segments`` the checksummed file format and its durable file operations, ``resync`` the reading
of segments past damaged bytes, ``records`` the record format and the types it stores. What must survive a
restart besides the records, the cumulative series states and recent request hashes, is ``state``, kept in
``state_files`` and in the compact ``series`` table the conversion to deltas shares.
"""
