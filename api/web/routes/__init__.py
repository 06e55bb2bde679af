"""HTTP routes, one module per audience. Routes are thin: check, call a service function, shape the answer."""
