"""A self-signed TLS certificate for the web page, made once with the system's openssl."""
from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

CERT_FILE, KEY_FILE = "web-cert.pem", "web-key.pem"


class TlsError(RuntimeError):
    """The certificate could not be made."""


def ensure_self_signed(folder: Path, *, days: int = 3650) -> tuple[Path, Path]:
    """(cert, key) in `folder`, made on first call (EC P-256, CN = this host name, SAN also localhost)."""
    cert, key = folder / CERT_FILE, folder / KEY_FILE
    if cert.exists() and key.exists():
        return cert, key
    folder.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname() or "nvr"
    command = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
               "-days", str(days), "-subj", f"/CN={host}", "-addext", f"subjectAltName=DNS:{host},DNS:localhost,IP:127.0.0.1",
               "-keyout", str(key), "-out", str(cert)]
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=60)
    except FileNotFoundError:
        raise TlsError("openssl is not installed; install it or give web.tls_cert and web.tls_key") from None
    except subprocess.CalledProcessError as exc:
        raise TlsError(f"openssl failed: {exc.stderr.decode(errors='replace').strip()}") from None
    os.chmod(key, 0o600)
    return cert, key
