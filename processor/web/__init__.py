"""The HTTP API the workers serve (Faust web views on aiohttp).

Pure parts (the stage-gate decision, the opportunity view, bearer checks,
the OpenAPI document) sit in their own modules with no I/O; ``views`` and
``middleware`` are the thin aiohttp/Faust shell around them.
"""
