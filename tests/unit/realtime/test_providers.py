"""Providers: recognised from the URL or chosen, the model where each takes it, the key where each wants it."""

from __future__ import annotations

import pytest

from ava_tray.realtime.providers import (
    Provider,
    ProviderError,
    auth_headers,
    endpoint_for,
    provider_for,
    recognise,
    session_url,
)

KEY = "sk-" "test-provider-0123456789"


@pytest.mark.parametrize(("url", "provider"), [
    ("wss://api.openai.com/v1/realtime?model=gpt-realtime", Provider.OPENAI),
    ("wss://myres.openai.azure.com/openai/v1/realtime?model=dep", Provider.AZURE),
    ("wss://myres.cognitiveservices.azure.com/openai/realtime?api-version=2025-04-01-preview&deployment=d",
     Provider.AZURE),
    ("wss://gateway.example.com/openai/v1/realtime", Provider.AZURE),
    ("ws://127.0.0.1:8765/v1/realtime", Provider.CUSTOM),
])
def test_recognised_from_the_url(url: str, provider: Provider) -> None:
    assert recognise(url) is provider


def test_the_environment_beats_settings_beats_the_url() -> None:
    url = "wss://api.openai.com/v1/realtime"
    assert provider_for(url, "", env={}) is Provider.OPENAI
    assert provider_for(url, "azure", env={}) is Provider.AZURE
    assert provider_for(url, "azure", env={"AVA_PROVIDER": "custom"}) is Provider.CUSTOM
    assert provider_for(url, "automatic", env={"AVA_PROVIDER": ""}) is Provider.OPENAI
    with pytest.raises(ProviderError, match="openai, azure, custom"):
        provider_for(url, "", env={"AVA_PROVIDER": "google"})


def test_the_model_goes_where_each_provider_takes_it() -> None:
    assert session_url("wss://api.openai.com/v1/realtime?model=gpt-realtime", Provider.OPENAI,
                       "gpt-realtime-2.1") == "wss://api.openai.com/v1/realtime?model=gpt-realtime-2.1"
    assert session_url("wss://r.openai.azure.com/openai/v1/realtime", Provider.AZURE,
                       "my-dep") == "wss://r.openai.azure.com/openai/v1/realtime?model=my-dep"
    old = session_url("wss://r.openai.azure.com/openai/realtime?api-version=2024-10-01-preview", Provider.AZURE,
                      "my-dep")
    assert old == "wss://r.openai.azure.com/openai/realtime?api-version=2024-10-01-preview&deployment=my-dep"


def test_azure_takes_api_key_and_no_bearer_the_others_bearer() -> None:
    assert auth_headers(Provider.AZURE, KEY) == {"api-key": KEY}
    assert auth_headers(Provider.OPENAI, KEY) == {"Authorization": f"Bearer {KEY}"}
    assert auth_headers(Provider.CUSTOM, None) == {}
    endpoint = endpoint_for("wss://r.openai.azure.com/openai/v1/realtime", Provider.AZURE, "dep", KEY)
    assert KEY not in repr(endpoint) and KEY not in str(endpoint)
