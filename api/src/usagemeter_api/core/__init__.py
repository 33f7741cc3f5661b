"""Configuration, bearer tokens, the ClickHouse client pool and the clock: what every stage is built on."""
