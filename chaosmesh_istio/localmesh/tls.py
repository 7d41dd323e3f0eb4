"""A private CA and a 127.0.0.1 server certificate for the local control plane.

TLS is not optional here: kubectl (client-go) only sends a bearer token over https, so a
plain-http API server cannot be both authenticated and usable with kubectl. Certificates
are made with the ``openssl`` command, which avoids a compiled dependency.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from chaosmesh_istio.errors import MeshError

__all__ = ["TlsFiles", "ensure_certificates"]

_DAYS = "3650"
_SERVER_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, IP:::1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the CA certificate (for clients) and the server certificate and key."""

    ca: Path
    cert: Path
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise MeshError(
            "the local mesh needs the 'openssl' command to make its TLS "
            "certificate; install openssl and retry"
        )
    done = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise MeshError(
            f"openssl {args[0]} failed while making the local mesh certificate: "
            f"{done.stderr.strip()!r}"
        )


def ensure_certificates(directory: Path) -> TlsFiles:
    """Return the TLS files under ``directory/tls``, creating them on first use."""
    tls_dir = directory / "tls"
    files = TlsFiles(tls_dir / "ca.crt", tls_dir / "server.crt", tls_dir / "server.key")
    if all(path.exists() for path in (files.ca, files.cert, files.key)):
        return files
    tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Build in a scratch directory and move in last, so a crash never leaves half a set.
    with tempfile.TemporaryDirectory(dir=tls_dir) as scratch:
        work = Path(scratch)
        ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
        _openssl(
            "req",
            "-x509",
            *ec,
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            _DAYS,
            "-subj",
            "/CN=chaosmesh-istio local CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            cwd=work,
        )
        _openssl(
            "req",
            "-new",
            *ec,
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
            cwd=work,
        )
        (work / "server.ext").write_text(_SERVER_EXTENSIONS)
        _openssl(
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            _DAYS,
            "-extfile",
            "server.ext",
            cwd=work,
        )
        (work / "server.key").chmod(0o600)
        for name in ("server.key", "server.crt", "ca.crt"):
            (work / name).replace(tls_dir / name)
    return files
