"""Client TLS settings: an encrypted private key opens with its password."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest

from processor.settings import Settings
from processor.stream.kafka import aiokafka_options


def _encrypted_key_pair(directory: Path, password: str) -> tuple[Path, Path]:
    cert, key = directory / "client.pem", directory / "client.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-days", "1",
                    "-subj", "/CN=hygiene-test", "-keyout", str(key), "-out", str(cert),
                    "-passout", f"pass:{password}"], check=True, capture_output=True)
    assert b"ENCRYPTED" in key.read_bytes()
    return cert, key


def test_an_encrypted_client_key_is_opened_with_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = _encrypted_key_pair(tmp_path, "s3cret-pass")
    monkeypatch.setenv("HYGIENE_KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("HYGIENE_KAFKA_SSL_CERTFILE", str(cert))
    monkeypatch.setenv("HYGIENE_KAFKA_SSL_KEYFILE", str(key))
    monkeypatch.setenv("HYGIENE_KAFKA_SSL_KEYFILE_PASSWORD", "wrong")
    with pytest.raises(ssl.SSLError):
        aiokafka_options(Settings())
    monkeypatch.setenv("HYGIENE_KAFKA_SSL_KEYFILE_PASSWORD", "s3cret-pass")
    options = aiokafka_options(Settings())
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert "s3cret-pass" not in repr(Settings())
