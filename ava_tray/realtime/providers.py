"""Who serves the Realtime API: OpenAI, Azure OpenAI, or another GA-compatible endpoint.

Each provider puts the model in its own place in the URL, authenticates the key its own way, and ends
sessions after its own limit. Pure functions, no I/O: the connection asks here what to send.
"""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

logger = logging.getLogger(__name__)

PROVIDER_ENV = "AVA_PROVIDER"
AZURE_KEY_ENV = "AZURE_OPENAI_API_KEY"
AZURE_HOST_SUFFIXES = (".openai.azure.com", ".cognitiveservices.azure.com")
AZURE_DEFAULT_API_VERSION = "2025-04-01-preview"


class Provider(enum.StrEnum):
    """Who serves the endpoint."""

    OPENAI = "openai"
    AZURE = "azure"
    CUSTOM = "custom"


PROVIDER_LABELS = {
    Provider.OPENAI: "OpenAI",
    Provider.AZURE: "Azure OpenAI",
    Provider.CUSTOM: "Another GA-compatible endpoint",
}

SESSION_LIMIT_S: dict[Provider, float | None] = {Provider.OPENAI: 3600.0, Provider.AZURE: 1800.0,
                                                 Provider.CUSTOM: None}
"""How long the provider keeps a session open; used when `session.created` carries no `expires_at` (another
endpoint's limit is unknown: it is not guessed)."""


class ProviderError(ValueError):
    """A provider name AVA does not know; the message lists the ones it does."""


def parse_provider(text: str) -> Provider | None:
    """`openai`, `azure` or `custom`; empty or `automatic` means recognise it from the URL (None)."""
    value = text.strip().lower()
    if value in ("", "auto", "automatic"):
        return None
    try:
        return Provider(value)
    except ValueError:
        names = ", ".join(p.value for p in Provider)
        raise ProviderError(f"Unknown provider {text!r}: use one of {names} (or automatic).") from None


def recognise(url: str) -> Provider:
    """The provider a URL belongs to: Azure by its host or an `/openai/` path, OpenAI by its host."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if host.endswith(AZURE_HOST_SUFFIXES) or parts.path.startswith("/openai/"):
        return Provider.AZURE
    if host == "api.openai.com":
        return Provider.OPENAI
    return Provider.CUSTOM


def provider_for(url: str, chosen: str = "", env: Mapping[str, str] | None = None) -> Provider:
    """`AVA_PROVIDER` first (headless override), then the choice in Settings, then the URL."""
    environ = os.environ if env is None else env
    for source in (environ.get(PROVIDER_ENV, ""), chosen):
        provider = parse_provider(source)
        if provider is not None:
            return provider
    return recognise(url)


@dataclass(frozen=True)
class Endpoint:
    """Everything needed to open one session: where, and with which headers."""

    url: str
    headers: dict[str, str]
    provider: Provider

    def __repr__(self) -> str:  # the headers hold the key: never printed
        return f"Endpoint(url={self.url!r}, provider={self.provider.value})"


def session_url(url: str, provider: Provider, model: str) -> str:
    """The URL with the model (or Azure deployment) where this provider takes it."""
    parts = urlsplit(url.strip())
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if provider is Provider.AZURE and (parts.path.rstrip("/").endswith("/openai/realtime")):
        # the older Azure shape: .../openai/realtime?api-version=...&deployment=...
        query.setdefault("api-version", AZURE_DEFAULT_API_VERSION)
        if model:
            query["deployment"] = model
        query.pop("model", None)
    elif model:
        query["model"] = model
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def auth_headers(provider: Provider, api_key: str | None) -> dict[str, str]:
    """Azure takes API keys in `api-key` (Bearer there is for Entra tokens); OpenAI and others take Bearer."""
    if not api_key:
        return {}
    if provider is Provider.AZURE:
        return {"api-key": api_key}
    return {"Authorization": f"Bearer {api_key}"}


def endpoint_for(url: str, provider: Provider, model: str, api_key: str | None) -> Endpoint:
    """The session URL and headers for this provider, model and key."""
    return Endpoint(session_url(url, provider, model), auth_headers(provider, api_key), provider)
