"""Where and how to connect to Temporal, merged from two places:

1. the `temporal` CLI's environment configuration (``temporalio.envconfig``): its profile
   file (TEMPORAL_CONFIG_FILE, default ~/.config/temporalio/temporal.toml; profile from
   SPOOL_TEMPORAL_PROFILE, else TEMPORAL_PROFILE, else "default") overlaid with its
   TEMPORAL_* environment variables;
2. Spool's own settings: every SPOOL_TEMPORAL_* value that was explicitly set wins, field by
   field.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.envconfig import ClientConfigProfile, ClientConfigTLS, DataSource
from temporalio.service import TLSConfig

from spool.config import Settings
from spool.temporal.failures import NO_CONNECT, TemporalConnectError, one_line

# Where the SDK looks when TEMPORAL_CONFIG_FILE is unset (Linux; the OS config dir elsewhere).
DEFAULT_CLI_CONFIG_FILE = "~/.config/temporalio/temporal.toml"
# Spool's settings that, set, ask for TLS (unless SPOOL_TEMPORAL_TLS says otherwise).
SPOOL_TLS_SETTINGS = frozenset(
    {
        "temporal_tls_ca",
        "temporal_tls_cert",
        "temporal_tls_key",
        "temporal_tls_server_name",
        "temporal_api_key",
    }
)


@dataclass(frozen=True)
class PemInput:
    """One PEM input (CA bundle, client cert or key) and the setting it came from."""

    what: str  # "CA bundle", "client certificate", "client private key"
    setting: str  # the variable or profile field that configured it, for error messages
    path: Path | None = None
    data: bytes | None = None

    def describe(self) -> str:
        where = str(self.path) if self.path is not None else "inline data"
        return f"{self.what} {where} ({self.setting})"

    def read(self) -> bytes:
        """The PEM bytes; a missing, unreadable or non-PEM file is a one-line error."""
        try:
            pem = self.path.read_bytes() if self.path is not None else (self.data or b"")
        except FileNotFoundError:
            raise self.error("does not exist") from None
        except IsADirectoryError:
            raise self.error("is a directory") from None
        except OSError as exc:
            raise self.error(f"cannot be read: {exc.strerror}") from None
        # rustls would only say "UnknownIssuer" or "PrivateKeyParseError" for a wrong file.
        marker = b"PRIVATE KEY-----" if self.what == "client private key" else b"CERTIFICATE-----"
        if marker not in pem:
            raise self.error(f"is not PEM (no {marker.decode()})")
        return pem

    def error(self, problem: str) -> TemporalConnectError:
        return TemporalConnectError(f"{NO_CONNECT}: {self.describe()} {problem}")


@dataclass(frozen=True)
class ConnectionPlan:
    """Where and how to connect, after merging the temporal CLI's config and Spool's."""

    address: str
    namespace: str
    tls: bool = False
    server_ca: PemInput | None = None
    client_cert: PemInput | None = None
    client_key: PemInput | None = None
    server_name: str | None = None
    api_key: str | None = None
    rpc_metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def mtls(self) -> bool:
        return self.tls and self.client_cert is not None

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for Client.connect; reads (and checks) the PEM files."""
        kwargs: dict[str, Any] = {
            "target_host": self.address,
            "namespace": self.namespace,
            "tls": self.tls_config() if self.tls else False,
        }
        if self.api_key:
            kwargs["api_key"] = self.api_key
        if self.rpc_metadata:
            kwargs["rpc_metadata"] = dict(self.rpc_metadata)
        return kwargs

    def tls_config(self) -> TLSConfig:
        given, missing = None, ""
        if self.client_cert is not None and self.client_key is None:
            given, missing = self.client_cert, "client private key"
        elif self.client_key is not None and self.client_cert is None:
            given, missing = self.client_key, "client certificate"
        if given is not None:
            raise TemporalConnectError(
                f"{NO_CONNECT}: {given.describe()} is set but no {missing} is: mTLS needs both "
                "(SPOOL_TEMPORAL_TLS_CERT and SPOOL_TEMPORAL_TLS_KEY)"
            )
        return TLSConfig(
            server_root_ca_cert=self.server_ca.read() if self.server_ca else None,
            client_cert=self.client_cert.read() if self.client_cert else None,
            client_private_key=self.client_key.read() if self.client_key else None,
            domain=self.server_name,
        )


def load_cli_profile(
    settings: Settings, env: Mapping[str, str] | None = None
) -> ClientConfigProfile:
    """The temporal CLI's profile (file + TEMPORAL_* variables) from env (default: os.environ).

    A missing default file is no error; a named profile that does not exist or a malformed
    file is.
    """
    try:
        # The bridge takes a real dict, not os.environ.
        return ClientConfigProfile.load(
            profile=settings.temporal_profile or None,
            override_env_vars=None if env is None else dict(env),
        )
    except Exception as exc:  # noqa: BLE001 - the bridge raises its own ConfigError
        environ = os.environ if env is None else env
        config_file = environ.get("TEMPORAL_CONFIG_FILE") or DEFAULT_CLI_CONFIG_FILE
        profile_from = "SPOOL_TEMPORAL_PROFILE" if settings.temporal_profile else "TEMPORAL_PROFILE"
        raise TemporalConnectError(
            f"{NO_CONNECT}: the temporal CLI config {config_file} (profile from {profile_from}) "
            f"cannot be used: {one_line(str(exc))}"
        ) from None


def connection_plan(settings: Settings, env: Mapping[str, str] | None = None) -> ConnectionPlan:
    """Merge the temporal CLI's config (the base) with explicitly set SPOOL_TEMPORAL_* values."""
    env = os.environ if env is None else env
    profile = load_cli_profile(settings, env)
    cli_tls = profile.tls
    spool_set = {name for name in settings.model_fields_set if getattr(settings, name) is not None}

    def spool_or_cli(name: str, cli_value: Any) -> Any:
        if name in spool_set or not cli_value:
            return getattr(settings, name)
        return cli_value

    return ConnectionPlan(
        address=spool_or_cli("temporal_address", profile.address),
        namespace=spool_or_cli("temporal_namespace", profile.namespace),
        tls=_tls_enabled(settings.temporal_tls, bool(spool_set & SPOOL_TLS_SETTINGS), profile),
        server_name=spool_or_cli("temporal_tls_server_name", cli_tls and cli_tls.server_name),
        api_key=_spool_api_key(settings, spool_set) or profile.api_key or None,
        rpc_metadata=profile.grpc_meta,
        **_pem_inputs(settings, spool_set, cli_tls, env),
    )


def _spool_api_key(settings: Settings, spool_set: set[str]) -> str | None:
    spool_secret = settings.temporal_api_key if "temporal_api_key" in spool_set else None
    return spool_secret.get_secret_value() if spool_secret is not None else None


def _pem_inputs(
    settings: Settings,
    spool_set: set[str],
    cli_tls: ClientConfigTLS | None,
    env: Mapping[str, str],
) -> dict[str, PemInput | None]:
    """ConnectionPlan's PEM inputs: each from Spool's setting if set, else the CLI's."""
    spool_pem = {
        "server_ca": _spool_pem(settings, spool_set, "temporal_tls_ca", "CA bundle"),
        "client_cert": _spool_pem(settings, spool_set, "temporal_tls_cert", "client certificate"),
        "client_key": _spool_pem(settings, spool_set, "temporal_tls_key", "client private key"),
    }
    cli_pem = {
        "server_ca": _cli_pem(
            cli_tls and cli_tls.server_root_ca_cert,
            "CA bundle",
            "TEMPORAL_TLS_SERVER_CA_CERT",
            "server_ca_cert",
            env,
        ),
        "client_cert": _cli_pem(
            cli_tls and cli_tls.client_cert,
            "client certificate",
            "TEMPORAL_TLS_CLIENT_CERT",
            "client_cert",
            env,
        ),
        "client_key": _cli_pem(
            cli_tls and cli_tls.client_private_key,
            "client private key",
            "TEMPORAL_TLS_CLIENT_KEY",
            "client_key",
            env,
        ),
    }
    return {key: spool_pem[key] or cli_pem[key] for key in spool_pem}


def _tls_enabled(
    spool_tls: bool | None, spool_asks_tls: bool, profile: ClientConfigProfile
) -> bool:
    if spool_tls is not None:
        return spool_tls
    if spool_asks_tls:
        return True
    # The SDK's own rule: a [tls] section (or any TEMPORAL_TLS_* variable) turns TLS on unless
    # it says disabled; an API key alone turns it on too.
    if profile.tls is not None:
        return profile.tls.disabled is not True
    return bool(profile.api_key)


def _spool_pem(settings: Settings, spool_set: set[str], name: str, what: str) -> PemInput | None:
    if name not in spool_set:
        return None
    return PemInput(what, f"SPOOL_{name.upper()}", path=Path(getattr(settings, name)))


def _cli_pem(
    source: DataSource | None, what: str, env_prefix: str, toml_key: str, env: Mapping[str, str]
) -> PemInput | None:
    """A PEM input from the temporal CLI config, labelled with the variable that set it."""
    if not source:
        return None
    if isinstance(source, Path):
        setting = (
            f"{env_prefix}_PATH"
            if env.get(f"{env_prefix}_PATH")
            else f"tls.{toml_key}_path in the temporal CLI profile"
        )
        return PemInput(what, setting, path=source)
    setting = (
        f"{env_prefix}_DATA"
        if env.get(f"{env_prefix}_DATA")
        else f"tls.{toml_key}_data in the temporal CLI profile"
    )
    data = source.encode() if isinstance(source, str) else source
    return PemInput(what, setting, data=data)
