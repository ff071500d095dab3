"""A SASL_SSL listener for the local broker: what a managed Kafka (Confluent
Cloud, MSK, Aiven, Strimzi) asks of a client, on loopback.

The tests run workers against it with every SASL mechanism the product
speaks, so the security settings are exercised by a real broker, not only
read. The certificates are a throw-away CA made with the openssl command
(Debian's base system has it), and the accounts are test accounts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from processor.devstack._proc import run_step
from processor.devstack.apt import which_or_install

USER = "hygiene"
PASSWORDS = {
    "PLAIN": "plain-test-secret",
    "SCRAM-SHA-256": "scram256-test-secret",
    "SCRAM-SHA-512": "scram512-test-secret",
}
"""The test account's password per mechanism (SCRAM credentials are stored
by the broker per mechanism, so each gets its own to prove which was used)."""

MECHANISMS = (*PASSWORDS, "OAUTHBEARER")

LISTENER = "SASL_SSL"


@dataclass(frozen=True)
class Tls:
    ca_file: Path
    """The CA a client must trust (HYGIENE_KAFKA_SSL_CAFILE)."""
    keystore: Path
    """The broker's key and certificate chain, PEM."""


def make_tls(directory: Path) -> Tls:
    """A CA and a broker certificate for 127.0.0.1 and localhost, valid a day."""
    openssl = which_or_install("openssl", "openssl")
    if openssl is None:
        raise RuntimeError("the openssl command is missing and could not be installed")
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = directory / "ca.key", directory / "ca.pem"
    key, csr, cert = directory / "broker.key", directory / "broker.csr", directory / "broker.pem"
    extensions = directory / "san.cnf"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    steps = [
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=hygiene-test-ca", "-keyout", str(ca_key), "-out", str(ca_cert)],
        # Kafka's PEM keystore reads PKCS#8 keys, which genpkey writes.
        [openssl, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
         "-out", str(key)],
        [openssl, "req", "-new", "-key", str(key), "-subj", "/CN=localhost", "-out", str(csr)],
        [openssl, "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
         "-CAcreateserial", "-days", "1", "-extfile", str(extensions), "-out", str(cert)],
    ]
    for step in steps:
        run_step(step, f"openssl {step[1]}", timeout=60)
    keystore = directory / "broker-keystore.pem"
    keystore.write_bytes(key.read_bytes() + cert.read_bytes() + ca_cert.read_bytes())
    return Tls(ca_file=ca_cert, keystore=keystore)


def broker_properties(tls: Tls) -> dict[str, str]:
    """The listener's settings, merged into the broker's (the caller adds it
    to ``listeners`` and ``advertised.listeners``). OAUTHBEARER uses Kafka's
    unsecured-token validator: the tests check that the client fetches and
    presents a token from the configured token endpoint; verifying a
    signature is the production broker's business."""
    prefix = f"listener.name.{LISTENER.lower()}"
    jaas = {
        "plain": "org.apache.kafka.common.security.plain.PlainLoginModule required "
                 f'user_{USER}="{PASSWORDS["PLAIN"]}";',
        "scram-sha-256": "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "scram-sha-512": "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "oauthbearer": "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule "
                       'required unsecuredLoginStringClaim_sub="broker";',
    }
    properties = {
        f"{prefix}.sasl.enabled.mechanisms": ",".join(MECHANISMS),
        f"{prefix}.ssl.keystore.type": "PEM",
        f"{prefix}.ssl.keystore.location": str(tls.keystore),
        "sasl.enabled.mechanisms": ",".join(MECHANISMS),
    }
    properties.update({f"{prefix}.{mechanism}.sasl.jaas.config": config
                       for mechanism, config in jaas.items()})
    return properties


def scram_format_arguments() -> list[str]:
    """StorageTool arguments that create the SCRAM credentials with the
    cluster (KRaft keeps them in its metadata log)."""
    arguments = []
    for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
        arguments += ["--add-scram",
                      f"{mechanism}=[name={USER},password={PASSWORDS[mechanism]}]"]
    return arguments
