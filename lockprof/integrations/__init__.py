"""Other profilers that host lockprof's collector (docs/collector-protocol.md).

``lockprof.integrations.ddtrace``: Datadog's profiler (docs/ddtrace.md).
"""
