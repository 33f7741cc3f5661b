"""Request and response bodies, one module per resource, and the error bodies every route documents."""
