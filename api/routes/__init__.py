"""The API's routes, one module per resource. Each route declares its response model and
the error answers it can give (api/errors.py), so /openapi.json documents every answer."""
