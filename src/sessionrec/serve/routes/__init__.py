"""The service's endpoints, one ``APIRouter`` module per resource.

Handlers are plain module-level functions. A module whose OpenAPI text depends on the
configuration (the limits, the admin token's variable) builds its router in
``build_router(...)``; ``ops`` has none and exports ``router``.
:func:`sessionrec.serve.app.create_app` includes them in order.
"""
