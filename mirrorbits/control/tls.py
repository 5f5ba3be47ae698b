"""TLS for the control channel: the daemon's certificate, the CA its clients must prove.

With ``RPCTLSCertificate`` set, the TCP control listener speaks TLS (1.2 or later) and takes
only clients presenting a certificate signed by a CA of ``RPCTLSClientCA``; the password is
still checked on top. ``mirrorbits-ctl -tls-ca`` checks the daemon's certificate against the
given CA and the host name or IP address it connects to (service-identity).

Every problem with the files is a :class:`TLSSetupError`: one line naming the setting (or
flag), the file and the reason. The daemon reads its files again at each reload
(:class:`ServerTLS`): a renewed certificate applies to the next connections, and files that
cannot be used leave the running ones in place.
"""

from __future__ import annotations

import re

from OpenSSL import SSL, crypto
from twisted.internet import ssl
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
)
from twisted.internet.protocol import ServerFactory
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from zope.interface import implementer

from mirrorbits.logs import Logger

log = Logger()

# Larger than any sensible PEM file (a CA bundle is ~200 KiB).
MAX_PEM_BYTES = 4 * 1024 * 1024
_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


class TLSSetupError(ValueError):
    """A certificate or key that cannot be used; ``str(err)`` says which and why."""


def _read(label: str, path: str) -> bytes:
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_PEM_BYTES + 1)
    except OSError as err:
        raise TLSSetupError(f"{label} {path}: cannot read it: {err.strerror or err}") from None
    if len(data) > MAX_PEM_BYTES:
        raise TLSSetupError(f"{label} {path}: larger than {MAX_PEM_BYTES} bytes")
    return data


def _certificates(label: str, path: str) -> list[ssl.Certificate]:
    """Every PEM certificate of the file, in order (at least one)."""
    blocks = _CERTIFICATE.findall(_read(label, path))
    if not blocks:
        raise TLSSetupError(f"{label} {path}: no PEM certificate in it")
    try:
        return [ssl.Certificate.loadPEM(block) for block in blocks]
    except (crypto.Error, ValueError) as err:
        raise TLSSetupError(f"{label} {path}: invalid certificate ({_reason(err)})") from None


def _key(label: str, path: str) -> ssl.KeyPair:
    try:
        return ssl.KeyPair.load(_read(label, path), crypto.FILETYPE_PEM)
    except (crypto.Error, ValueError, TypeError):
        raise TLSSetupError(f"{label} {path}: no usable PEM private key in it (it must not "
                            "be protected by a passphrase)") from None


def _reason(err: Exception) -> str:
    details = err.args[0] if err.args else err
    if isinstance(details, list) and details and isinstance(details[0], tuple):
        return str(details[0][-1])
    return str(details)


def tls_reason(error: BaseException | None) -> str:
    """OpenSSL's reasons for a failed handshake (``SSL.Error``), in one line."""
    if error is None:
        return "unknown"
    details = error.args[0] if error.args else []
    reasons = [str(detail[-1]) for detail in details
               if isinstance(detail, tuple) and detail] if isinstance(details, list) else []
    return ", ".join(reasons) or str(error) or type(error).__name__


def server_options(certificate: str, key: str, client_ca: str) -> ssl.CertificateOptions:
    """The daemon's TLS settings: its certificate (and chain) and key, the clients' CA.

    ``key`` may be empty when the key is in the certificate's file.
    """
    chain = _certificates("RPCTLSCertificate", certificate)
    key_label, key_path = ("RPCTLSKey", key) if key else ("RPCTLSCertificate", certificate)
    private_key = _key(key_label, key_path)
    authorities = _certificates("RPCTLSClientCA", client_ca)
    options = ssl.CertificateOptions(
        privateKey=private_key.original,
        certificate=chain[0].original,
        extraCertChain=[extra.original for extra in chain[1:]],
        trustRoot=ssl.trustRootFromCertificates(authorities),
        raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
    )
    _check_pair(options, f"{key_label} {key_path}", f"RPCTLSCertificate {certificate}")
    return options


def _check_pair(options: ssl.CertificateOptions, key: str, certificate: str) -> None:
    try:
        options.getContext()
    except SSL.Error:
        raise TLSSetupError(f"{key}: the key does not match the certificate of "
                            f"{certificate}") from None


@implementer(IOpenSSLServerConnectionCreator)
class ServerTLS:
    """The daemon's TLS settings from its files; each new connection uses the current ones."""

    def __init__(self, certificate: str, key: str, client_ca: str) -> None:
        self.options = server_options(certificate, key, client_ca)  # TLSSetupError

    def reload(self, certificate: str, key: str, client_ca: str) -> None:
        """Read the files again (a renewed certificate, a new CA); files that cannot be used
        leave the current settings in place, with one line saying why."""
        try:
            self.options = server_options(certificate, key, client_ca)
        except TLSSetupError as err:
            log.error("Control TLS not reloaded, the current certificate stays: {error}",
                      error=str(err))
            return
        log.info("Control TLS: certificate, key and client CA read again")

    def serverConnectionForTLS(self, protocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        return SSL.Connection(self.options.getContext(), None)


class _ControlTLSFactory(TLSMemoryBIOFactory):
    noisy = False

    def logPrefix(self) -> str:
        """The wrapped factory's name: ``Control starting on ...`` with or without TLS."""
        prefix: str = self.wrappedFactory.logPrefix()
        return prefix


def tls_factory(options: ServerTLS, factory: ServerFactory) -> TLSMemoryBIOFactory:
    """``factory`` behind TLS on the server side."""
    return _ControlTLSFactory(options, False, factory)


def client_options(host: str, ca: str, certificate: str,
                   key: str) -> IOpenSSLClientConnectionCreator:
    """``mirrorbits-ctl``'s TLS settings: the daemon at ``host`` must have a certificate of
    ``ca`` for that name or address; ``certificate`` (with ``key``, or its key in the same
    file; empty: none) proves who the client is."""
    authority = _certificates("-tls-ca", ca)
    client = None
    if certificate:
        own = _certificates("-tls-cert", certificate)[0]
        key_label, key_path = ("-tls-key", key) if key else ("-tls-cert", certificate)
        key_pair = _key(key_label, key_path)
        _check_pair(ssl.CertificateOptions(privateKey=key_pair.original,
                                           certificate=own.original),
                    f"{key_label} {key_path}", f"-tls-cert {certificate}")
        client = ssl.PrivateCertificate.fromCertificateAndKeyPair(own, key_pair)
    elif key:
        raise TLSSetupError("-tls-key needs -tls-cert")
    trust = ssl.trustRootFromCertificates(authority)
    return ssl.optionsForClientTLS(host, trustRoot=trust, clientCertificate=client)
