"""Plans, periods, quota figures, usage and system health: the API's rules, free of HTTP."""
