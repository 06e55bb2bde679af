"""The HTTP edge: the FastAPI app, routes, pydantic schemas, authentication, request limits and the intake fast path.

Routes stay thin: they check input and roles, then hand the work to :mod:`api.service`."""
