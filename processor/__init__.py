"""revops-hygiene: CRM pipeline hygiene as a stream processor.

The native core (``processor.hygiene_core``) allocates with mimalloc, which
by default hands freed memory back to the system 10 ms after it is freed.
Every unit the state agent applies frees and reallocates megabytes of
stored forms and records, so the kernel zeroed fresh pages for each one: a
sixth of the core's time per message (``bench/README.md``, session 8). A
second's delay keeps that memory for the next unit, and still returns it
when the worker idles. Set here, before the extension can load, unless the
environment says otherwise (mimalloc reads it once, at its first use).
"""

import os

os.environ.setdefault("MIMALLOC_PURGE_DELAY", "1000")
