"""OpenID Connect relying party: authorization code flow with PKCE (S256), state and nonce.

Built on Authlib's `AsyncOAuth2Client` for the OAuth 2.0 parts and joserfc for ID token
validation, because Authlib has no Litestar integration and does not check `aud` by itself.
Works with Auth0 (issuer `https://<domain>/`) and any provider with discovery, such as the local
`oidc-provider-mock` used by `make run`.

Specs followed: OpenID Connect Core 1.0 §3.1 (authorization code flow, ID token validation
§3.1.3.7), RFC 7636 (PKCE), OpenID Connect Discovery 1.0, RP-Initiated Logout 1.0.
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError

with warnings.catch_warnings():
    # Authlib 1.9 prefers the new `httpx2` package and warns when it falls back to `httpx`, which
    # the Stripe SDK already uses; the fallback is supported, so keep one HTTP client library.
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from app.settings import OIDCSettings
from app.web.i18n import N_

logger = logging.getLogger(__name__)

ID_TOKEN_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]
CLOCK_SKEW_SECONDS = 60
# An access token naming an unknown `kid` refetches the JWKS at most this often, so a stream of
# forged tokens cannot turn into a stream of requests to the provider.
JWKS_REFETCH_INTERVAL_SECONDS = 30


class SignInError(Exception):
    """Sign-in failed; `reason` is a short machine code, the message is safe to show to a person."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ProviderMetadata:
    """The parts of the provider's discovery document this app uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None


@dataclass(frozen=True)
class AuthorizationRequest:
    """A started sign-in: the URL to send the browser to and the secrets to keep in the session."""

    url: str
    state: str
    nonce: str
    code_verifier: str


class OIDCClient:
    """One configured OpenID provider.

    Discovery metadata and the JWKS are cached in process memory: both are public, identical
    for every process, and refetched when a token names an unknown key.
    """

    def __init__(self, settings: OIDCSettings, redirect_uri: str) -> None:
        self.settings = settings
        self.redirect_uri = redirect_uri
        self._metadata: ProviderMetadata | None = None
        self._jwks: KeySet | None = None
        self._jwks_refetched_at = 0.0
        self._lock = asyncio.Lock()

    def _oauth_client(self) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=self.settings.client_id,
            client_secret=self.settings.client_secret,
            scope=self.settings.scope,
            redirect_uri=self.redirect_uri,
            code_challenge_method="S256",
            timeout=self.settings.http_timeout,
        )

    async def metadata(self) -> ProviderMetadata:
        """The provider's discovery document (`<issuer>/.well-known/openid-configuration`).

        Raises:
            SignInError: `provider_unavailable` when it cannot be fetched or names another issuer.
        """
        if self._metadata is not None:
            return self._metadata
        async with self._lock:
            if self._metadata is None:
                url = self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
                document = await self._get_json(url)
                issuer = str(document.get("issuer", ""))
                if issuer != self.settings.issuer:
                    logger.error("OIDC discovery names issuer %r, expected %r", issuer, self.settings.issuer)
                    raise SignInError("provider_unavailable", N_("The sign-in provider is misconfigured."))
                self._metadata = ProviderMetadata(
                    issuer=issuer,
                    authorization_endpoint=str(document["authorization_endpoint"]),
                    token_endpoint=str(document["token_endpoint"]),
                    jwks_uri=str(document["jwks_uri"]),
                    end_session_endpoint=document.get("end_session_endpoint"),
                )
        return self._metadata

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=self.settings.http_timeout) as http:
                response = await http.get(url)
                response.raise_for_status()
                data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            logger.error("OIDC provider request to %s failed: %s", url, exc)
            raise SignInError("provider_unavailable", N_("The sign-in provider cannot be reached.")) from exc
        if not isinstance(data, dict):
            raise SignInError("provider_unavailable", N_("The sign-in provider answered unexpectedly."))
        return data

    async def _key_set(self, refresh: bool = False) -> KeySet:
        if self._jwks is None or refresh:
            metadata = await self.metadata()
            self._jwks = KeySet.import_key_set(await self._get_json(metadata.jwks_uri))  # type: ignore[arg-type]
        return self._jwks

    async def authorization_request(self) -> AuthorizationRequest:
        """Start the authorization code flow with fresh `state`, `nonce` and PKCE S256 verifier.

        Raises:
            SignInError: when the provider's discovery document cannot be fetched.
        """
        metadata = await self.metadata()
        state, nonce, code_verifier = generate_token(32), generate_token(32), generate_token(64)
        async with self._oauth_client() as client:
            url, _ = client.create_authorization_url(
                metadata.authorization_endpoint, state=state, nonce=nonce, code_verifier=code_verifier
            )
        return AuthorizationRequest(url=url, state=state, nonce=nonce, code_verifier=code_verifier)

    async def exchange_code(self, code: str, code_verifier: str) -> dict[str, Any]:
        """Exchange an authorization code at the token endpoint.

        Returns the token response (`id_token`, `access_token`, …).

        Raises:
            SignInError: `code_rejected` (invalid, expired or replayed code) or `provider_unavailable`.
        """
        metadata = await self.metadata()
        try:
            async with self._oauth_client() as client:
                token = await client.fetch_token(
                    metadata.token_endpoint, code=code, code_verifier=code_verifier, grant_type="authorization_code"
                )
        except OAuthError as exc:
            logger.warning("OIDC token endpoint refused the code: %s", exc.error)
            raise SignInError("code_rejected", N_("The sign-in could not be completed. Please try again.")) from exc
        except httpx.HTTPError as exc:
            logger.error("OIDC token endpoint unreachable: %s", exc)
            raise SignInError("provider_unavailable", N_("The sign-in provider cannot be reached.")) from exc
        if not token.get("id_token"):
            raise SignInError("invalid_token", N_("The sign-in provider sent no ID token."))
        return dict(token)

    async def validate_id_token(self, id_token: str, nonce: str, now: int | None = None) -> dict[str, Any]:
        """Validate an ID token per OpenID Connect Core §3.1.3.7 and return its claims.

        Checks the signature against the provider's JWKS, `iss` (exact), `aud` (contains the
        client id; `azp` equal to it when there are several audiences), `exp` and `iat` (with
        60 s clock skew), `nonce` (equal to the one kept in the session) and `sub` (present).

        Args:
            id_token: the compact JWS from the token response.
            nonce: the nonce stored when the sign-in started.
            now: the current time in Unix seconds (UTC); defaults to the clock.

        Raises:
            SignInError: `invalid_token` for any failed check.
        """
        try:
            try:
                token = jwt.decode(id_token, await self._key_set(), algorithms=ID_TOKEN_ALGORITHMS)
            except (InvalidKeyIdError, ValueError):
                # An unknown `kid` after a key rotation: refetch the JWKS once.
                token = jwt.decode(id_token, await self._key_set(refresh=True), algorithms=ID_TOKEN_ALGORITHMS)
            registry = jwt.JWTClaimsRegistry(
                now=now if now is not None else int(time.time()),
                leeway=CLOCK_SKEW_SECONDS,
                iss={"essential": True, "value": self.settings.issuer},
                aud={"essential": True, "value": self.settings.client_id},
                sub={"essential": True},
                exp={"essential": True},
                iat={"essential": True},
                nonce={"essential": True, "value": nonce},
            )
            registry.validate(token.claims)
        except (JoseError, ValueError) as exc:
            logger.warning("ID token rejected: %s", exc)
            raise SignInError("invalid_token", N_("The sign-in could not be verified. Please try again.")) from exc
        claims = dict(token.claims)
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.settings.client_id:
            logger.warning("ID token has several audiences and azp %r", claims.get("azp"))
            raise SignInError("invalid_token", N_("The sign-in could not be verified. Please try again."))
        return claims

    async def validate_access_token(self, access_token: str, audience: str, now: int | None = None) -> dict[str, Any]:
        """Validate a JWT access token (RFC 9068; Auth0 issues them for an API) and return its claims.

        Checks the signature against the provider's JWKS (asymmetric algorithms only, so `alg: none`
        and HMAC tokens are refused), `iss` (exactly the configured issuer), `aud` (equal to
        `audience`, or a list containing it, as Auth0 sends with the userinfo audience), `exp`
        (required), `nbf` (when present), with 60 s clock skew, and `sub` (present). A token whose
        `kid` is unknown refetches the JWKS once (at most every 30 s).

        Args:
            access_token: the compact JWS from `Authorization: Bearer`.
            audience: the `API_AUDIENCE` setting.
            now: the current time in Unix seconds (UTC); defaults to the clock.

        Raises:
            SignInError: `invalid_token` for any failed check; `provider_unavailable` when the JWKS
                cannot be fetched.
        """
        try:
            try:
                token = jwt.decode(access_token, await self._key_set(), algorithms=ID_TOKEN_ALGORITHMS)
            except (InvalidKeyIdError, ValueError):
                if time.monotonic() - self._jwks_refetched_at < JWKS_REFETCH_INTERVAL_SECONDS:
                    raise
                self._jwks_refetched_at = time.monotonic()
                token = jwt.decode(access_token, await self._key_set(refresh=True), algorithms=ID_TOKEN_ALGORITHMS)
            registry = jwt.JWTClaimsRegistry(
                now=now if now is not None else int(time.time()),
                leeway=CLOCK_SKEW_SECONDS,
                iss={"essential": True, "value": self.settings.issuer},
                aud={"essential": True, "value": audience},
                sub={"essential": True},
                exp={"essential": True},
            )
            registry.validate(token.claims)
        except (JoseError, ValueError) as exc:
            logger.info("Access token rejected: %s", exc)
            raise SignInError("invalid_token", N_("The access token is not valid.")) from exc
        return dict(token.claims)

    async def logout_url(self, return_to: str, id_token_hint: str | None = None) -> str:
        """Where to send the browser to end the provider's session too.

        The discovery document's `end_session_endpoint` when there is one (RP-Initiated Logout),
        otherwise Auth0's `/v2/logout?client_id=…&returnTo=…`. Falls back to `return_to` when
        the provider cannot be reached: the local session is already gone by then.
        """
        try:
            metadata = await self.metadata()
        except SignInError:
            return return_to
        if metadata.end_session_endpoint:
            params = {"client_id": self.settings.client_id, "post_logout_redirect_uri": return_to}
            if id_token_hint:
                params["id_token_hint"] = id_token_hint
            separator = "&" if "?" in metadata.end_session_endpoint else "?"
            return metadata.end_session_endpoint + separator + urlencode(params)
        if self.settings.is_auth0:
            query = urlencode({"client_id": self.settings.client_id, "returnTo": return_to})
            return f"{self.settings.issuer.rstrip('/')}/v2/logout?{query}"
        return return_to
