"""Checking: the feature.usage rule, the paths that apply it to a metrics request, and spans to rows."""
