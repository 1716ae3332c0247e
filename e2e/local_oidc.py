"""The local OpenID provider of `make run`: `oidc-provider-mock` plus one development-only route that
issues JWT access tokens for the JSON API.

oidc-provider-mock signs ID tokens but hands out opaque access tokens, while the API wants what
Auth0 issues for an API: a JWT signed by the issuer's key with `aud` = the API's identifier. So this
wrapper adds

    POST /dev/access-token   sub=<subject>  aud=<API_AUDIENCE>  [expires_in=<seconds, default 3600>]
                             [roles=admin|support, repeatable or space separated]
    → {"access_token": "<JWT>", "token_type": "Bearer", "expires_in": 3600}

`roles` go into the `roles` claim (the default `OIDC_ROLES_CLAIM`), for the operator endpoints.

signed with the provider's own key (the one its JWKS publishes), issuer taken from the Host header
like the provider's. Only ever served by this local stand-in, never by the app.

    python -m e2e.local_oidc --port 9400 --user-claims '{"sub": "demo", "email": "demo@example.com"}'
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import timedelta
from typing import Any

import flask
import oidc_provider_mock
import uvicorn
from joserfc import jwt
from joserfc.jwk import RSAKey

MAX_EXPIRES_IN = 24 * 3600


def build_app(user_claims: list[dict[str, Any]]) -> flask.Flask:
    """oidc-provider-mock's Flask app with `POST /dev/access-token` added."""
    users = [
        oidc_provider_mock.User(sub=c["sub"], claims={k: v for k, v in c.items() if k != "sub"}) for c in user_claims
    ]
    app = oidc_provider_mock.app(user_claims=users, access_token_max_age=timedelta(hours=1))

    @app.post("/dev/access-token")
    def dev_access_token() -> Any:
        values = flask.request.get_json(silent=True) or flask.request.values
        subject, audience = str(values.get("sub") or ""), str(values.get("aud") or "")
        try:
            expires_in = int(values.get("expires_in") or 3600)
        except ValueError:
            expires_in = 0
        if not subject or not audience or not 0 < expires_in <= MAX_EXPIRES_IN:
            return {"error": "invalid_request", "error_description": "send sub, aud and expires_in (1–86400)"}, 400
        raw_roles = values.get("roles") if flask.request.is_json else flask.request.values.getlist("roles")
        if isinstance(raw_roles, str):
            raw_roles = [raw_roles]
        roles = sorted({word for value in raw_roles or [] for word in str(value).split()})
        published = flask.g.oidc_provider_mock_storage.jwk.as_dict(is_private=True)
        key = RSAKey.import_key(published)
        now = int(time.time())
        claims = {
            "iss": flask.request.host_url.rstrip("/"),
            "sub": subject,
            "aud": audience,
            "iat": now,
            "exp": now + expires_in,
            "scope": "openid profile email",
            **({"roles": roles} if roles else {}),
        }
        header = {"alg": "RS256", "typ": "at+jwt", **({"kid": published["kid"]} if published.get("kid") else {})}
        token = jwt.encode(header, claims, key)
        return {"access_token": token, "token_type": "Bearer", "expires_in": expires_in}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=9400)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--user-claims", action="append", default=[], help="JSON object with a sub; repeatable")
    args = parser.parse_args()
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"
    app = build_app([json.loads(c) for c in args.user_claims])
    uvicorn.run(app, interface="wsgi", host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
