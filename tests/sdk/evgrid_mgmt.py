"""The management API for the SDK tests: plain urllib with the admin bearer key (the SDK has no
management client for evgrid). Reads EVGRID_HTTP and EVGRID_ADMIN, set by tests/sdk.rs."""

import json
import os
import urllib.error
import urllib.request

ADMIN = os.environ["EVGRID_ADMIN"]
HTTP = os.environ["EVGRID_HTTP"].rstrip("/")


def call(method, path, body=None, timeout=40):
    """Calls /mgmt{path}; returns (status, parsed JSON or None), error statuses included."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(HTTP + "/mgmt" + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + ADMIN)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, (json.loads(raw) if raw else None)
