-- OTLP metrics decoded by ClickHouse itself. The collector inserts spooled
-- ExportMetricsServiceRequests (length-delimited protobuf, format schema
-- otlp_metrics.proto:ExportMetricsServiceRequest shipped with the collector) into
-- otel_metrics_landing_<kind>, Null tables whose columns mirror the message, one per
-- metric kind (a view costs time per insert even when it yields no rows, so a
-- request goes only to the kinds it holds); the views below unnest them into the
-- raw metric tables with the same rows and attribute
-- rendering as the collector's row path: strings as they are, ints as decimals,
-- bools as true/false, doubles as Python's repr, bytes as base64, ids as lower hex,
-- and the last of repeated attribute keys wins. On a cluster the landing tables and
-- their views exist on every node and write into the Distributed raw tables, so a
-- collector may insert on any node and each row reaches its user's shard.

CREATE FUNCTION IF NOT EXISTS usagemeter_otlp_number {{ON_CLUSTER}} AS (as_double, as_int) ->
    if(as_int != 0, toFloat64(as_int), as_double);

-- Shortest round-trip digits and decimal point position of a finite, non-zero |x|
-- printed by toString (fixed or exponent notation), laid out as Python's repr does.
CREATE FUNCTION IF NOT EXISTS usagemeter_otlp_digits {{ON_CLUSTER}} AS (a) ->
    trimBoth(replaceOne(splitByChar('e', a)[1], '.', ''), '0');

CREATE FUNCTION IF NOT EXISTS usagemeter_otlp_point {{ON_CLUSTER}} AS (a) ->
    multiIf(
        position(a, 'e') > 0, toInt32(splitByChar('e', a)[2]) + 1,
        startsWith(a, '0.'), toInt32(length(trimLeft(substring(a, 3), '0'))) - toInt32(length(substring(a, 3))),
        toInt32(length(splitByChar('.', a)[1])));

CREATE FUNCTION IF NOT EXISTS usagemeter_otlp_layout {{ON_CLUSTER}} AS (digits, point) ->
    arrayMap((d, p) -> multiIf(
        p > 16 OR p <= -4,
        concat(substring(d, 1, 1), if(length(d) > 1, concat('.', substring(d, 2)), ''),
               'e', if(p - 1 < 0, '-', '+'), if(abs(p - 1) < 10, '0', ''), toString(abs(p - 1))),
        p <= 0, concat('0.', repeat('0', toUInt32(greatest(-p, 0))), d),
        p >= length(d), concat(d, repeat('0', toUInt32(greatest(p - length(d), 0))), '.0'),
        concat(substring(d, 1, greatest(p, 1)), '.', substring(d, greatest(p, 1) + 1))), [digits], [point])[1];

CREATE FUNCTION IF NOT EXISTS usagemeter_otlp_double {{ON_CLUSTER}} AS (x) ->
    multiIf(
        NOT isFinite(x), toString(x),
        x = 0, if(startsWith(toString(x), '-'), '-0.0', '0.0'),
        concat(if(x < 0, '-', ''),
               arrayMap(a -> usagemeter_otlp_layout(usagemeter_otlp_digits(a), usagemeter_otlp_point(a)), [toString(abs(x))])[1]));

CREATE FUNCTION IF NOT EXISTS usagemeter_otlp_value {{ON_CLUSTER}} AS (v) ->
    multiIf(
        notEmpty(tupleElement(v, 'bool_value')), if(tupleElement(v, 'bool_value')[-1], 'true', 'false'),
        notEmpty(tupleElement(v, 'int_value')), toString(tupleElement(v, 'int_value')[-1]),
        notEmpty(tupleElement(v, 'double_value')), usagemeter_otlp_double(tupleElement(v, 'double_value')[-1]),
        notEmpty(tupleElement(v, 'bytes_value')), base64Encode(tupleElement(v, 'bytes_value')[-1]),
        tupleElement(v, 'string_value'));

-- Keys in order, the last value of a repeated key kept.
CREATE FUNCTION IF NOT EXISTS usagemeter_otlp_attributes {{ON_CLUSTER}} AS (kvs) ->
    arrayMap((keys, values) -> if(
        length(arrayDistinct(keys)) = length(keys),
        mapFromArrays(keys, values),
        mapFromArrays(
            arrayReverse(arrayFilter((k, n) -> n = 1, arrayReverse(keys), arrayEnumerateUniq(arrayReverse(keys)))),
            arrayReverse(arrayFilter((v, n) -> n = 1, arrayReverse(values), arrayEnumerateUniq(arrayReverse(keys)))))),
        [tupleElement(kvs, 'key')], [arrayMap(kv -> usagemeter_otlp_value(tupleElement(kv, 'value')), kvs)])[1];

CREATE TABLE IF NOT EXISTS otel_metrics_landing_sum {{ON_CLUSTER}} (
    resource_metrics Array(Tuple(resource Tuple(attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String))))), scope_metrics Array(Tuple(scope Tuple(name String, version String, attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), dropped_attributes_count UInt32), metrics Array(Tuple(name String, description String, unit String, gauge Tuple(data_points Array(Tuple(attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), start_time_unix_nano UInt64, time_unix_nano UInt64, as_double Float64, as_int Int64, exemplars Array(Tuple(filtered_attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), time_unix_nano UInt64, as_double Float64, as_int Int64, span_id String, trace_id String)), flags UInt32))), sum Tuple(data_points Array(Tuple(attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), start_time_unix_nano UInt64, time_unix_nano UInt64, as_double Float64, as_int Int64, exemplars Array(Tuple(filtered_attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), time_unix_nano UInt64, as_double Float64, as_int Int64, span_id String, trace_id String)), flags UInt32)), aggregation_temporality Int32, is_monotonic Bool), histogram Tuple(data_points Array(Tuple(attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), start_time_unix_nano UInt64, time_unix_nano UInt64, count UInt64, sum Float64, bucket_counts Array(UInt64), explicit_bounds Array(Float64), exemplars Array(Tuple(filtered_attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), time_unix_nano UInt64, as_double Float64, as_int Int64, span_id String, trace_id String)), flags UInt32, min Float64, max Float64)), aggregation_temporality Int32), exponential_histogram Tuple(data_points Array(Tuple(attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), start_time_unix_nano UInt64, time_unix_nano UInt64, count UInt64, sum Float64, scale Int32, zero_count UInt64, positive Tuple(offset Int32, bucket_counts Array(UInt64)), negative Tuple(offset Int32, bucket_counts Array(UInt64)), flags UInt32, exemplars Array(Tuple(filtered_attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), time_unix_nano UInt64, as_double Float64, as_int Int64, span_id String, trace_id String)), min Float64, max Float64)), aggregation_temporality Int32), summary Tuple(data_points Array(Tuple(attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), start_time_unix_nano UInt64, time_unix_nano UInt64, count UInt64, sum Float64, quantile_values Array(Tuple(quantile Float64, value Float64)), flags UInt32))))), schema_url String)), schema_url String))
) ENGINE = Null;

CREATE TABLE IF NOT EXISTS otel_metrics_landing_gauge {{ON_CLUSTER}} (
    resource_metrics Array(Tuple(resource Tuple(attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String))))), scope_metrics Array(Tuple(scope Tuple(name String, version String, attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), dropped_attributes_count UInt32), metrics Array(Tuple(name String, description String, unit String, gauge Tuple(data_points Array(Tuple(attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), start_time_unix_nano UInt64, time_unix_nano UInt64, as_double Float64, as_int Int64, exemplars Array(Tuple(filtered_attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), time_unix_nano UInt64, as_double Float64, as_int Int64, span_id String, trace_id String)), flags UInt32))), sum Tuple(data_points Array(Tuple(attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), start_time_unix_nano UInt64, time_unix_nano UInt64, as_double Float64, as_int Int64, exemplars Array(Tuple(filtered_attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), time_unix_nano UInt64, as_double Float64, as_int Int64, span_id String, trace_id String)), flags UInt32)), aggregation_temporality Int32, is_monotonic Bool), histogram Tuple(data_points Array(Tuple(attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), start_time_unix_nano UInt64, time_unix_nano UInt64, count UInt64, sum Float64, bucket_counts Array(UInt64), explicit_bounds Array(Float64), exemplars Array(Tuple(filtered_attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), time_unix_nano UInt64, as_double Float64, as_int Int64, span_id String, trace_id String)), flags UInt32, min Float64, max Float64)), aggregation_temporality Int32), exponential_histogram Tuple(data_points Array(Tuple(attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), start_time_unix_nano UInt64, time_unix_nano UInt64, count UInt64, sum Float64, scale Int32, zero_count UInt64, positive Tuple(offset Int32, bucket_counts Array(UInt64)), negative Tuple(offset Int32, bucket_counts Array(UInt64)), flags UInt32, exemplars Array(Tuple(filtered_attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), time_unix_nano UInt64, as_double Float64, as_int Int64, span_id String, trace_id String)), min Float64, max Float64)), aggregation_temporality Int32), summary Tuple(data_points Array(Tuple(attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), start_time_unix_nano UInt64, time_unix_nano UInt64, count UInt64, sum Float64, quantile_values Array(Tuple(quantile Float64, value Float64)), flags UInt32))))), schema_url String)), schema_url String))
) ENGINE = Null;

CREATE TABLE IF NOT EXISTS otel_metrics_landing_histogram {{ON_CLUSTER}} (
    resource_metrics Array(Tuple(resource Tuple(attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String))))), scope_metrics Array(Tuple(scope Tuple(name String, version String, attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), dropped_attributes_count UInt32), metrics Array(Tuple(name String, description String, unit String, gauge Tuple(data_points Array(Tuple(attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), start_time_unix_nano UInt64, time_unix_nano UInt64, as_double Float64, as_int Int64, exemplars Array(Tuple(filtered_attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), time_unix_nano UInt64, as_double Float64, as_int Int64, span_id String, trace_id String)), flags UInt32))), sum Tuple(data_points Array(Tuple(attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), start_time_unix_nano UInt64, time_unix_nano UInt64, as_double Float64, as_int Int64, exemplars Array(Tuple(filtered_attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), time_unix_nano UInt64, as_double Float64, as_int Int64, span_id String, trace_id String)), flags UInt32)), aggregation_temporality Int32, is_monotonic Bool), histogram Tuple(data_points Array(Tuple(attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), start_time_unix_nano UInt64, time_unix_nano UInt64, count UInt64, sum Float64, bucket_counts Array(UInt64), explicit_bounds Array(Float64), exemplars Array(Tuple(filtered_attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), time_unix_nano UInt64, as_double Float64, as_int Int64, span_id String, trace_id String)), flags UInt32, min Float64, max Float64)), aggregation_temporality Int32), exponential_histogram Tuple(data_points Array(Tuple(attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), start_time_unix_nano UInt64, time_unix_nano UInt64, count UInt64, sum Float64, scale Int32, zero_count UInt64, positive Tuple(offset Int32, bucket_counts Array(UInt64)), negative Tuple(offset Int32, bucket_counts Array(UInt64)), flags UInt32, exemplars Array(Tuple(filtered_attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), time_unix_nano UInt64, as_double Float64, as_int Int64, span_id String, trace_id String)), min Float64, max Float64)), aggregation_temporality Int32), summary Tuple(data_points Array(Tuple(attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), start_time_unix_nano UInt64, time_unix_nano UInt64, count UInt64, sum Float64, quantile_values Array(Tuple(quantile Float64, value Float64)), flags UInt32))))), schema_url String)), schema_url String))
) ENGINE = Null;

CREATE TABLE IF NOT EXISTS otel_metrics_landing_exponential_histogram {{ON_CLUSTER}} (
    resource_metrics Array(Tuple(resource Tuple(attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String))))), scope_metrics Array(Tuple(scope Tuple(name String, version String, attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), dropped_attributes_count UInt32), metrics Array(Tuple(name String, description String, unit String, gauge Tuple(data_points Array(Tuple(attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), start_time_unix_nano UInt64, time_unix_nano UInt64, as_double Float64, as_int Int64, exemplars Array(Tuple(filtered_attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), time_unix_nano UInt64, as_double Float64, as_int Int64, span_id String, trace_id String)), flags UInt32))), sum Tuple(data_points Array(Tuple(attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), start_time_unix_nano UInt64, time_unix_nano UInt64, as_double Float64, as_int Int64, exemplars Array(Tuple(filtered_attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), time_unix_nano UInt64, as_double Float64, as_int Int64, span_id String, trace_id String)), flags UInt32)), aggregation_temporality Int32, is_monotonic Bool), histogram Tuple(data_points Array(Tuple(attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), start_time_unix_nano UInt64, time_unix_nano UInt64, count UInt64, sum Float64, bucket_counts Array(UInt64), explicit_bounds Array(Float64), exemplars Array(Tuple(filtered_attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), time_unix_nano UInt64, as_double Float64, as_int Int64, span_id String, trace_id String)), flags UInt32, min Float64, max Float64)), aggregation_temporality Int32), exponential_histogram Tuple(data_points Array(Tuple(attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), start_time_unix_nano UInt64, time_unix_nano UInt64, count UInt64, sum Float64, scale Int32, zero_count UInt64, positive Tuple(offset Int32, bucket_counts Array(UInt64)), negative Tuple(offset Int32, bucket_counts Array(UInt64)), flags UInt32, exemplars Array(Tuple(filtered_attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), time_unix_nano UInt64, as_double Float64, as_int Int64, span_id String, trace_id String)), min Float64, max Float64)), aggregation_temporality Int32), summary Tuple(data_points Array(Tuple(attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), start_time_unix_nano UInt64, time_unix_nano UInt64, count UInt64, sum Float64, quantile_values Array(Tuple(quantile Float64, value Float64)), flags UInt32))))), schema_url String)), schema_url String))
) ENGINE = Null;

CREATE TABLE IF NOT EXISTS otel_metrics_landing_summary {{ON_CLUSTER}} (
    resource_metrics Array(Tuple(resource Tuple(attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String))))), scope_metrics Array(Tuple(scope Tuple(name String, version String, attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), dropped_attributes_count UInt32), metrics Array(Tuple(name String, description String, unit String, gauge Tuple(data_points Array(Tuple(attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), start_time_unix_nano UInt64, time_unix_nano UInt64, as_double Float64, as_int Int64, exemplars Array(Tuple(filtered_attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), time_unix_nano UInt64, as_double Float64, as_int Int64, span_id String, trace_id String)), flags UInt32))), sum Tuple(data_points Array(Tuple(attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), start_time_unix_nano UInt64, time_unix_nano UInt64, as_double Float64, as_int Int64, exemplars Array(Tuple(filtered_attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), time_unix_nano UInt64, as_double Float64, as_int Int64, span_id String, trace_id String)), flags UInt32)), aggregation_temporality Int32, is_monotonic Bool), histogram Tuple(data_points Array(Tuple(attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), start_time_unix_nano UInt64, time_unix_nano UInt64, count UInt64, sum Float64, bucket_counts Array(UInt64), explicit_bounds Array(Float64), exemplars Array(Tuple(filtered_attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), time_unix_nano UInt64, as_double Float64, as_int Int64, span_id String, trace_id String)), flags UInt32, min Float64, max Float64)), aggregation_temporality Int32), exponential_histogram Tuple(data_points Array(Tuple(attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), start_time_unix_nano UInt64, time_unix_nano UInt64, count UInt64, sum Float64, scale Int32, zero_count UInt64, positive Tuple(offset Int32, bucket_counts Array(UInt64)), negative Tuple(offset Int32, bucket_counts Array(UInt64)), flags UInt32, exemplars Array(Tuple(filtered_attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), time_unix_nano UInt64, as_double Float64, as_int Int64, span_id String, trace_id String)), min Float64, max Float64)), aggregation_temporality Int32), summary Tuple(data_points Array(Tuple(attributes Array(Tuple(key String, value Tuple(string_value String, bool_value Array(Bool), int_value Array(Int64), double_value Array(Float64), bytes_value Array(String)))), start_time_unix_nano UInt64, time_unix_nano UInt64, count UInt64, sum Float64, quantile_values Array(Tuple(quantile Float64, value Float64)), flags UInt32))))), schema_url String)), schema_url String))
) ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS otel_metrics_sum_landing_mv {{ON_CLUSTER}}
TO otel_metrics_sum AS
SELECT
    ResourceAttributes,
    ResourceSchemaUrl,
    ScopeName,
    ScopeVersion,
    ScopeAttributes,
    ScopeDroppedAttrCount,
    ScopeSchemaUrl,
    ResourceAttributes['service.name'] AS ServiceName,
    metric.name AS MetricName,
    metric.description AS MetricDescription,
    metric.unit AS MetricUnit,
    usagemeter_otlp_attributes(point.attributes) AS Attributes,
    fromUnixTimestamp64Nano(toInt64(point.start_time_unix_nano), 'UTC') AS StartTimeUnix,
    fromUnixTimestamp64Nano(toInt64(point.time_unix_nano), 'UTC') AS TimeUnix,
    usagemeter_otlp_number(point.as_double, point.as_int) AS Value,
    point.flags AS Flags,
    arrayMap(e -> usagemeter_otlp_attributes(e.filtered_attributes), point.exemplars) AS `Exemplars.FilteredAttributes`,
    arrayMap(e -> fromUnixTimestamp64Nano(toInt64(e.time_unix_nano), 'UTC'), point.exemplars) AS `Exemplars.TimeUnix`,
    arrayMap(e -> usagemeter_otlp_number(e.as_double, e.as_int), point.exemplars) AS `Exemplars.Value`,
    arrayMap(e -> lower(hex(e.span_id)), point.exemplars) AS `Exemplars.SpanId`,
    arrayMap(e -> lower(hex(e.trace_id)), point.exemplars) AS `Exemplars.TraceId`,
    metric.sum.aggregation_temporality AS AggregationTemporality,
    metric.sum.is_monotonic AS IsMonotonic
FROM (
    SELECT
        usagemeter_otlp_attributes(rm.resource.attributes) AS ResourceAttributes,
        rm.schema_url AS ResourceSchemaUrl,
        sm.scope.name AS ScopeName,
        sm.scope.version AS ScopeVersion,
        usagemeter_otlp_attributes(sm.scope.attributes) AS ScopeAttributes,
        sm.scope.dropped_attributes_count AS ScopeDroppedAttrCount,
        sm.schema_url AS ScopeSchemaUrl,
        metric
    FROM otel_metrics_landing_sum
    ARRAY JOIN resource_metrics AS rm
    ARRAY JOIN rm.scope_metrics AS sm
    ARRAY JOIN sm.metrics AS metric
    WHERE notEmpty(metric.sum.data_points)
)
ARRAY JOIN metric.sum.data_points AS point;

CREATE MATERIALIZED VIEW IF NOT EXISTS otel_metrics_gauge_landing_mv {{ON_CLUSTER}}
TO otel_metrics_gauge AS
SELECT
    ResourceAttributes,
    ResourceSchemaUrl,
    ScopeName,
    ScopeVersion,
    ScopeAttributes,
    ScopeDroppedAttrCount,
    ScopeSchemaUrl,
    ResourceAttributes['service.name'] AS ServiceName,
    metric.name AS MetricName,
    metric.description AS MetricDescription,
    metric.unit AS MetricUnit,
    usagemeter_otlp_attributes(point.attributes) AS Attributes,
    fromUnixTimestamp64Nano(toInt64(point.start_time_unix_nano), 'UTC') AS StartTimeUnix,
    fromUnixTimestamp64Nano(toInt64(point.time_unix_nano), 'UTC') AS TimeUnix,
    usagemeter_otlp_number(point.as_double, point.as_int) AS Value,
    point.flags AS Flags,
    arrayMap(e -> usagemeter_otlp_attributes(e.filtered_attributes), point.exemplars) AS `Exemplars.FilteredAttributes`,
    arrayMap(e -> fromUnixTimestamp64Nano(toInt64(e.time_unix_nano), 'UTC'), point.exemplars) AS `Exemplars.TimeUnix`,
    arrayMap(e -> usagemeter_otlp_number(e.as_double, e.as_int), point.exemplars) AS `Exemplars.Value`,
    arrayMap(e -> lower(hex(e.span_id)), point.exemplars) AS `Exemplars.SpanId`,
    arrayMap(e -> lower(hex(e.trace_id)), point.exemplars) AS `Exemplars.TraceId`
FROM (
    SELECT
        usagemeter_otlp_attributes(rm.resource.attributes) AS ResourceAttributes,
        rm.schema_url AS ResourceSchemaUrl,
        sm.scope.name AS ScopeName,
        sm.scope.version AS ScopeVersion,
        usagemeter_otlp_attributes(sm.scope.attributes) AS ScopeAttributes,
        sm.scope.dropped_attributes_count AS ScopeDroppedAttrCount,
        sm.schema_url AS ScopeSchemaUrl,
        metric
    FROM otel_metrics_landing_gauge
    ARRAY JOIN resource_metrics AS rm
    ARRAY JOIN rm.scope_metrics AS sm
    ARRAY JOIN sm.metrics AS metric
    WHERE notEmpty(metric.gauge.data_points)
)
ARRAY JOIN metric.gauge.data_points AS point;

CREATE MATERIALIZED VIEW IF NOT EXISTS otel_metrics_histogram_landing_mv {{ON_CLUSTER}}
TO otel_metrics_histogram AS
SELECT
    ResourceAttributes,
    ResourceSchemaUrl,
    ScopeName,
    ScopeVersion,
    ScopeAttributes,
    ScopeDroppedAttrCount,
    ScopeSchemaUrl,
    ResourceAttributes['service.name'] AS ServiceName,
    metric.name AS MetricName,
    metric.description AS MetricDescription,
    metric.unit AS MetricUnit,
    usagemeter_otlp_attributes(point.attributes) AS Attributes,
    fromUnixTimestamp64Nano(toInt64(point.start_time_unix_nano), 'UTC') AS StartTimeUnix,
    fromUnixTimestamp64Nano(toInt64(point.time_unix_nano), 'UTC') AS TimeUnix,
    point.count AS Count,
    point.sum AS Sum,
    point.bucket_counts AS BucketCounts,
    point.explicit_bounds AS ExplicitBounds,
    arrayMap(e -> usagemeter_otlp_attributes(e.filtered_attributes), point.exemplars) AS `Exemplars.FilteredAttributes`,
    arrayMap(e -> fromUnixTimestamp64Nano(toInt64(e.time_unix_nano), 'UTC'), point.exemplars) AS `Exemplars.TimeUnix`,
    arrayMap(e -> usagemeter_otlp_number(e.as_double, e.as_int), point.exemplars) AS `Exemplars.Value`,
    arrayMap(e -> lower(hex(e.span_id)), point.exemplars) AS `Exemplars.SpanId`,
    arrayMap(e -> lower(hex(e.trace_id)), point.exemplars) AS `Exemplars.TraceId`,
    point.flags AS Flags,
    point.min AS Min,
    point.max AS Max,
    metric.histogram.aggregation_temporality AS AggregationTemporality
FROM (
    SELECT
        usagemeter_otlp_attributes(rm.resource.attributes) AS ResourceAttributes,
        rm.schema_url AS ResourceSchemaUrl,
        sm.scope.name AS ScopeName,
        sm.scope.version AS ScopeVersion,
        usagemeter_otlp_attributes(sm.scope.attributes) AS ScopeAttributes,
        sm.scope.dropped_attributes_count AS ScopeDroppedAttrCount,
        sm.schema_url AS ScopeSchemaUrl,
        metric
    FROM otel_metrics_landing_histogram
    ARRAY JOIN resource_metrics AS rm
    ARRAY JOIN rm.scope_metrics AS sm
    ARRAY JOIN sm.metrics AS metric
    WHERE notEmpty(metric.histogram.data_points)
)
ARRAY JOIN metric.histogram.data_points AS point;

CREATE MATERIALIZED VIEW IF NOT EXISTS otel_metrics_exponential_histogram_landing_mv {{ON_CLUSTER}}
TO otel_metrics_exponential_histogram AS
SELECT
    ResourceAttributes,
    ResourceSchemaUrl,
    ScopeName,
    ScopeVersion,
    ScopeAttributes,
    ScopeDroppedAttrCount,
    ScopeSchemaUrl,
    ResourceAttributes['service.name'] AS ServiceName,
    metric.name AS MetricName,
    metric.description AS MetricDescription,
    metric.unit AS MetricUnit,
    usagemeter_otlp_attributes(point.attributes) AS Attributes,
    fromUnixTimestamp64Nano(toInt64(point.start_time_unix_nano), 'UTC') AS StartTimeUnix,
    fromUnixTimestamp64Nano(toInt64(point.time_unix_nano), 'UTC') AS TimeUnix,
    point.count AS Count,
    point.sum AS Sum,
    point.scale AS Scale,
    point.zero_count AS ZeroCount,
    point.positive.offset AS PositiveOffset,
    point.positive.bucket_counts AS PositiveBucketCounts,
    point.negative.offset AS NegativeOffset,
    point.negative.bucket_counts AS NegativeBucketCounts,
    arrayMap(e -> usagemeter_otlp_attributes(e.filtered_attributes), point.exemplars) AS `Exemplars.FilteredAttributes`,
    arrayMap(e -> fromUnixTimestamp64Nano(toInt64(e.time_unix_nano), 'UTC'), point.exemplars) AS `Exemplars.TimeUnix`,
    arrayMap(e -> usagemeter_otlp_number(e.as_double, e.as_int), point.exemplars) AS `Exemplars.Value`,
    arrayMap(e -> lower(hex(e.span_id)), point.exemplars) AS `Exemplars.SpanId`,
    arrayMap(e -> lower(hex(e.trace_id)), point.exemplars) AS `Exemplars.TraceId`,
    point.flags AS Flags,
    point.min AS Min,
    point.max AS Max,
    metric.exponential_histogram.aggregation_temporality AS AggregationTemporality
FROM (
    SELECT
        usagemeter_otlp_attributes(rm.resource.attributes) AS ResourceAttributes,
        rm.schema_url AS ResourceSchemaUrl,
        sm.scope.name AS ScopeName,
        sm.scope.version AS ScopeVersion,
        usagemeter_otlp_attributes(sm.scope.attributes) AS ScopeAttributes,
        sm.scope.dropped_attributes_count AS ScopeDroppedAttrCount,
        sm.schema_url AS ScopeSchemaUrl,
        metric
    FROM otel_metrics_landing_exponential_histogram
    ARRAY JOIN resource_metrics AS rm
    ARRAY JOIN rm.scope_metrics AS sm
    ARRAY JOIN sm.metrics AS metric
    WHERE notEmpty(metric.exponential_histogram.data_points)
)
ARRAY JOIN metric.exponential_histogram.data_points AS point;

CREATE MATERIALIZED VIEW IF NOT EXISTS otel_metrics_summary_landing_mv {{ON_CLUSTER}}
TO otel_metrics_summary AS
SELECT
    ResourceAttributes,
    ResourceSchemaUrl,
    ScopeName,
    ScopeVersion,
    ScopeAttributes,
    ScopeDroppedAttrCount,
    ScopeSchemaUrl,
    ResourceAttributes['service.name'] AS ServiceName,
    metric.name AS MetricName,
    metric.description AS MetricDescription,
    metric.unit AS MetricUnit,
    usagemeter_otlp_attributes(point.attributes) AS Attributes,
    fromUnixTimestamp64Nano(toInt64(point.start_time_unix_nano), 'UTC') AS StartTimeUnix,
    fromUnixTimestamp64Nano(toInt64(point.time_unix_nano), 'UTC') AS TimeUnix,
    point.count AS Count,
    point.sum AS Sum,
    arrayMap(q -> q.quantile, point.quantile_values) AS `ValueAtQuantiles.Quantile`,
    arrayMap(q -> q.value, point.quantile_values) AS `ValueAtQuantiles.Value`,
    point.flags AS Flags
FROM (
    SELECT
        usagemeter_otlp_attributes(rm.resource.attributes) AS ResourceAttributes,
        rm.schema_url AS ResourceSchemaUrl,
        sm.scope.name AS ScopeName,
        sm.scope.version AS ScopeVersion,
        usagemeter_otlp_attributes(sm.scope.attributes) AS ScopeAttributes,
        sm.scope.dropped_attributes_count AS ScopeDroppedAttrCount,
        sm.schema_url AS ScopeSchemaUrl,
        metric
    FROM otel_metrics_landing_summary
    ARRAY JOIN resource_metrics AS rm
    ARRAY JOIN rm.scope_metrics AS sm
    ARRAY JOIN sm.metrics AS metric
    WHERE notEmpty(metric.summary.data_points)
)
ARRAY JOIN metric.summary.data_points AS point;
