"""A small client of the appliance's REST API for scripts, benchmarks and tests: logs in, gets JSON."""
from __future__ import annotations

import json
import urllib.error
import urllib.request


class ApiClient:
    """Logs in with a user name and password on first use and again when the session is gone."""

    def __init__(self, base_url: str, username: str, password: str, *, timeout_s: float = 5.0):
        self.base_url, self._username, self._password = base_url.rstrip("/"), username, password
        self._timeout_s = timeout_s
        self._cookie: str | None = None
        self.csrf_token: str | None = None

    def login(self) -> None:
        body = json.dumps({"username": self._username, "password": self._password}).encode()
        request = urllib.request.Request(f"{self.base_url}/api/login", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
            self.csrf_token = json.load(response)["csrf_token"]
            self._cookie = "; ".join(h.split(";", 1)[0] for h in response.headers.get_all("Set-Cookie"))

    def get_json(self, path: str):
        """GET `path` as JSON. Raises urllib.error.URLError (or a subclass) if the server cannot answer."""
        if self._cookie is None:
            self.login()
        try:
            return self._get(path)
        except urllib.error.HTTPError as exc:
            if exc.code != 401:
                raise
            self.login()
            return self._get(path)

    def _get(self, path: str):
        request = urllib.request.Request(f"{self.base_url}{path}", headers={"Cookie": self._cookie or ""})
        with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
            return json.load(response)
