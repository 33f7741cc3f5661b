"""A user's usage: the rollup queries, the in-memory view, the cache and the period-usage reads built on them."""
