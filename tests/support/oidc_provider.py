"""A scriptable OpenID provider for the sign-in failure tests.

`oidc-provider-mock` (used by `make run` and the browser tests) only issues good tokens. These
tests need a provider that also issues wrong ones on demand: another audience, an expired
token, another nonce, another signing key, another issuer. This one speaks the same protocol
over real HTTP (discovery, JWKS, authorize, token with client authentication and PKCE S256
verification, single-use codes) and lets a test choose the next ID token's claims.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.jwk import RSAKey
from litestar import Litestar, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Response


@dataclass
class IssuedCode:
    client_id: str
    redirect_uri: str
    nonce: str | None
    code_challenge: str | None
    subject: str


@dataclass
class ScriptedProvider:
    """State of the provider; tests set `overrides`/`sign_with` before the token request."""

    issuer: str = ""
    client_id: str = "test-client"
    client_secret: str = "test-secret"
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "k1"}))
    codes: dict[str, IssuedCode] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    sign_with: RSAKey | None = None
    claims_for: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    jwks_requests: int = 0

    def access_token(self, subject: str, audience: str, header: dict[str, Any] | None = None, **claims: Any) -> str:
        """A JWT access token (RFC 9068, as Auth0 issues for an API) for `subject` and `audience`.

        `claims` override or (with None) remove claims; `header` overrides the JOSE header; the
        token is signed with `sign_with` when set, else the provider's published key.
        """
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "exp": now + 300,
            "scope": "openid profile email",
            **claims,
        }
        body = {k: v for k, v in body.items() if v is not None}
        key = self.sign_with or self.key
        return jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "at+jwt", **(header or {})}, body, key)

    def id_token(self, code: IssuedCode) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": code.subject,
            "aud": code.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": code.nonce,
            **self.claims_for.get(code.subject, {}),
        }
        claims.update(self.overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        key = self.sign_with or self.key
        return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


def build_provider_app(provider: ScriptedProvider) -> Litestar:
    """The provider as an ASGI app; `provider.issuer` must be set to where it is served."""

    @get("/.well-known/openid-configuration")
    async def discovery() -> dict[str, Any]:
        return {
            "issuer": provider.issuer,
            "authorization_endpoint": f"{provider.issuer}/authorize",
            "token_endpoint": f"{provider.issuer}/token",
            "jwks_uri": f"{provider.issuer}/jwks",
            "end_session_endpoint": f"{provider.issuer}/logout",
            "response_types_supported": ["code"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    @get("/jwks")
    async def jwks() -> dict[str, Any]:
        provider.jwks_requests += 1
        return {"keys": [provider.key.as_dict(private=False)]}

    @get("/authorize")
    async def authorize(request: Request[Any, Any, Any]) -> Redirect:
        q = request.query_params
        assert q.get("client_id") == provider.client_id, "unknown client"
        assert q.get("response_type") == "code"
        if q.get("login_hint") == "deny":
            return Redirect(q["redirect_uri"] + "?" + urlencode({"error": "access_denied", "state": q["state"]}))
        code = secrets.token_urlsafe(16)
        provider.codes[code] = IssuedCode(
            client_id=q["client_id"],
            redirect_uri=q["redirect_uri"],
            nonce=q.get("nonce"),
            code_challenge=q.get("code_challenge") if q.get("code_challenge_method") == "S256" else None,
            subject=q.get("login_hint") or "alice",
        )
        return Redirect(q["redirect_uri"] + "?" + urlencode({"code": code, "state": q["state"]}))

    @post("/token", status_code=200)
    async def token(
        request: Request[Any, Any, Any],
        data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[dict[str, Any]]:
        provider.token_requests.append(dict(data))
        auth = request.headers.get("authorization", "")
        expected = base64.b64encode(f"{provider.client_id}:{provider.client_secret}".encode()).decode()
        if auth != f"Basic {expected}":
            return Response({"error": "invalid_client"}, status_code=401)
        issued = provider.codes.pop(data.get("code", ""), None)  # single use
        if issued is None or issued.redirect_uri != data.get("redirect_uri"):
            return Response({"error": "invalid_grant"}, status_code=400)
        verifier = data.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if issued.code_challenge is None or challenge != issued.code_challenge:
            return Response({"error": "invalid_grant", "error_description": "PKCE check failed"}, status_code=400)
        return Response(
            {
                "access_token": secrets.token_urlsafe(16),
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": provider.id_token(issued),
            }
        )

    return Litestar(route_handlers=[discovery, jwks, authorize, token], debug=True)
