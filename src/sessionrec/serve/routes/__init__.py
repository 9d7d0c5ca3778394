"""The service's endpoints, one ``APIRouter`` module per resource.

Each module's ``build_router(...)`` registers its handlers (plain module-level functions)
with the OpenAPI text of the app's configured limits; :func:`sessionrec.serve.app.create_app`
includes them in order.
"""
