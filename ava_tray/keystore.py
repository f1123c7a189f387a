"""The API key, kept only in the OS keyring (Secret Service, Keychain, Credential Manager)."""

from __future__ import annotations

import logging
import os

import keyring
import keyring.errors

from ava_tray.redact import register_secret

logger = logging.getLogger(__name__)

SERVICE = "ava-tray"
ACCOUNT = "openai-api-key"
AZURE_ACCOUNT = "azure-openai-api-key"
"""Azure OpenAI keys are kept apart: a resource's key is not an OpenAI key."""
ENV_FOR = {ACCOUNT: "OPENAI_API_KEY", AZURE_ACCOUNT: "AZURE_OPENAI_API_KEY"}


def account_for(provider: str) -> str:
    """The keyring entry for a provider (`azure`, else the OpenAI key, which other GA endpoints also take)."""
    return AZURE_ACCOUNT if provider == "azure" else ACCOUNT


class KeyStoreError(Exception):
    """The keyring cannot be used; the message is one sentence naming the fix."""


class MissingKeyError(KeyStoreError):
    """No key anywhere: not in the environment, not in the keyring."""


def _explain(exc: Exception, action: str) -> KeyStoreError:
    """Turn a keyring failure into a sentence a user can act on (never the key, never a traceback)."""
    name = type(exc).__name__
    if isinstance(exc, keyring.errors.NoKeyringError):
        return KeyStoreError(
            f"Cannot {action}: no OS keyring is available. Start a Secret Service such as gnome-keyring "
            "or KWallet (on a headless machine set OPENAI_API_KEY instead)."
        )
    if isinstance(exc, keyring.errors.KeyringLocked) or "locked" in str(exc).lower() or "dismissed" in str(exc):
        return KeyStoreError(f"Cannot {action}: the OS keyring is locked. Unlock it (log in again or open "
                             "your keyring manager) and try again.")
    return KeyStoreError(f"Cannot {action}: the OS keyring failed ({name}). Check that your keyring service "
                         "is running and unlocked.")


def backend_name() -> str:
    """The keyring backend in use, for the self-test and the Settings dialog."""
    backend = keyring.get_keyring()
    return f"{type(backend).__module__}.{type(backend).__name__}"


def save_key(key: str, provider: str = "openai") -> None:
    """Store the key in the OS keyring (the provider's own entry); never anywhere else."""
    key = key.strip()
    if not key:
        raise KeyStoreError("The key is empty: paste your API key.")
    register_secret(key)
    try:
        keyring.set_password(SERVICE, account_for(provider), key)
    except Exception as exc:
        raise _explain(exc, "save the API key") from None


def stored_key(provider: str = "openai") -> str | None:
    """The provider's key in the OS keyring, or None if none is stored."""
    try:
        key = keyring.get_password(SERVICE, account_for(provider))
    except Exception as exc:
        raise _explain(exc, "read the API key") from None
    if key:
        register_secret(key)
    return key or None


def has_stored_key(provider: str = "openai") -> bool:
    return stored_key(provider) is not None


def forget_key(provider: str = "openai") -> bool:
    """Remove the provider's key from the OS keyring; False if there was none."""
    try:
        keyring.delete_password(SERVICE, account_for(provider))
    except keyring.errors.PasswordDeleteError:
        return False
    except Exception as exc:
        raise _explain(exc, "remove the API key") from None
    return True


def resolve_key(provider: str = "openai") -> str:
    """The provider's environment variable if set (`OPENAI_API_KEY`, `AZURE_OPENAI_API_KEY`: headless use),
    else its key in the OS keyring."""
    account = account_for(provider)
    variable = ENV_FOR[account]
    env = os.environ.get(variable, "").strip()
    if env:
        register_secret(env)
        return env
    key = stored_key(provider)
    if key is None:
        command = "ava-tray --set-key azure" if account == AZURE_ACCOUNT else "ava-tray --set-key"
        what = "Azure OpenAI API key" if account == AZURE_ACCOUNT else "API key"
        raise MissingKeyError(f"No {what} is set. Run `{command}` (or open Settings), or set {variable}; "
                              "`ava-tray --demo` runs without one.")
    return key


def describe_location() -> str:
    """Where the key lives, in words, for the Settings dialog."""
    return f"the OS keyring ({backend_name().rsplit('.', 2)[-2]}), service '{SERVICE}'"
