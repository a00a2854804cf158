"""schemathesis hooks for tests/system/test_openapi.py (loaded through SCHEMATHESIS_HOOKS).

A tus PATCH body is `application/offset+octet-stream`: bytes, sent as `application/octet-stream` is.
"""

import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
