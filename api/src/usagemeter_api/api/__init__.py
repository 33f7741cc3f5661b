"""The HTTP edge: routes, their dependencies and the answers the error tree maps to."""
