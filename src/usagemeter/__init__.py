"""usagemeter: feature-usage metering on OpenTelemetry and ClickHouse."""
