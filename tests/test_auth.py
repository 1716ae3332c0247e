"""Sign-in through OpenID Connect against a real (scriptable) provider over HTTP."""

from __future__ import annotations

import time

import httpx
from joserfc.jwk import RSAKey

from app.auth.tables import User
from tests.conftest import authorize_at_provider, query_of, sign_in, start_sign_in
from tests.support.oidc_provider import ScriptedProvider

Client = httpx.AsyncClient


async def account_page(client: Client) -> tuple[int, str]:
    response = await client.get("/account", follow_redirects=False)
    return response.status_code, response.text


async def test_sign_in_creates_the_user_and_lands_on_next(client: Client, oidc_provider: ScriptedProvider) -> None:
    oidc_provider.claims_for["alice"] = {"email": "alice@example.com", "email_verified": True, "name": "Alice Liddell"}
    response = await sign_in(client, "alice", next_path="/account?tab=profile")
    assert response.status_code == 303
    assert response.headers["location"] == "/account?tab=profile"
    status, html = await account_page(client)
    assert status == 200
    assert "Alice Liddell" in html and "alice@example.com" in html
    user = await User.objects().get(User.subject == "alice")
    assert user is not None and user.email_verified is True


async def test_authorization_request_uses_pkce_s256_state_and_nonce(
    client: Client, oidc_provider: ScriptedProvider
) -> None:
    params = query_of(await start_sign_in(client))
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) >= 43
    assert len(params["state"]) >= 20 and len(params["nonce"]) >= 20
    assert params["redirect_uri"] == f"{client.base_url}/auth/callback"
    assert "openid" in params["scope"].split()
    await sign_in(client)
    # The provider verified the code_verifier against the challenge before issuing tokens.
    assert oidc_provider.token_requests[-1]["code_verifier"]


async def test_second_sign_in_updates_the_same_user(client: Client, oidc_provider: ScriptedProvider) -> None:
    oidc_provider.claims_for["bob"] = {"email": "bob@old.example", "name": "Bob"}
    await sign_in(client, "bob")
    first = await User.objects().get(User.subject == "bob")
    oidc_provider.claims_for["bob"] = {"email": "bob@new.example", "name": "Robert"}
    await sign_in(client, "bob")
    users = await User.objects().where(User.subject == "bob")
    assert len(users) == 1
    assert users[0].id == first.id and users[0].email == "bob@new.example" and users[0].name == "Robert"
    assert users[0].last_login_at >= first.last_login_at


async def test_session_id_changes_at_sign_in(client: Client) -> None:
    authorization_url = await start_sign_in(client)
    before = client.cookies.get("billing_session")
    assert before, "starting a sign-in stores state in a server-side session"
    callback = await authorize_at_provider(authorization_url)
    response = await client.get("/auth/callback", params=callback, follow_redirects=False)
    assert response.status_code == 303
    after = client.cookies.get("billing_session")
    assert after and after != before
    # The pre-login session id is dead: a client presenting it is not signed in.
    client.cookies.set("billing_session", before)
    status, _ = await account_page(client)
    assert status == 303


async def test_unknown_state_shows_an_error_and_signs_nobody_in(client: Client) -> None:
    callback = await authorize_at_provider(await start_sign_in(client))
    response = await client.get("/auth/callback", params={**callback, "state": "forged"}, follow_redirects=False)
    assert response.status_code == 400
    assert 'data-reason="state_mismatch"' in response.text
    assert "expired or was already used" in response.text
    status, _ = await account_page(client)
    assert status == 303
    assert await User.count() == 0


async def test_callback_without_a_started_sign_in_is_refused(client: Client) -> None:
    response = await client.get("/auth/callback", params={"code": "x", "state": "y"})
    assert response.status_code == 400
    assert 'data-reason="state_mismatch"' in response.text


async def test_denied_consent_shows_cancelled(client: Client) -> None:
    callback = await authorize_at_provider(await start_sign_in(client), subject="deny")
    assert callback["error"] == "access_denied"
    response = await client.get("/auth/callback", params=callback)
    assert response.status_code == 400
    assert "Sign-in was cancelled" in response.text
    assert (await account_page(client))[0] == 303


async def test_replayed_code_is_refused(client: Client) -> None:
    authorization_url = await start_sign_in(client)
    callback = await authorize_at_provider(authorization_url)
    assert (await client.get("/auth/callback", params=callback, follow_redirects=False)).status_code == 303
    await client.post("/auth/logout", headers={"x-csrftoken": client.cookies.get("billing_csrf") or ""})
    client.cookies.clear()
    # Replaying the same code with a fresh, valid state: the provider refuses the code.
    fresh = query_of(await start_sign_in(client))
    response = await client.get("/auth/callback", params={"code": callback["code"], "state": fresh["state"]})
    assert response.status_code == 400
    assert 'data-reason="code_rejected"' in response.text
    assert (await account_page(client))[0] == 303


async def test_wrong_nonce_is_refused(client: Client, oidc_provider: ScriptedProvider) -> None:
    oidc_provider.overrides["nonce"] = "another-nonce"
    response = await sign_in(client)
    assert response.status_code == 400
    assert 'data-reason="invalid_token"' in response.text
    assert (await account_page(client))[0] == 303
    assert await User.count() == 0


async def test_wrong_audience_is_refused(client: Client, oidc_provider: ScriptedProvider) -> None:
    oidc_provider.overrides["aud"] = "some-other-client"
    response = await sign_in(client)
    assert response.status_code == 400
    assert 'data-reason="invalid_token"' in response.text
    assert await User.count() == 0


async def test_several_audiences_need_azp_equal_to_client_id(client: Client, oidc_provider: ScriptedProvider) -> None:
    oidc_provider.overrides["aud"] = [oidc_provider.client_id, "https://api.example"]
    oidc_provider.overrides["azp"] = "someone-else"
    assert (await sign_in(client)).status_code == 400
    oidc_provider.overrides["azp"] = oidc_provider.client_id
    assert (await sign_in(client)).status_code == 303


async def test_expired_token_is_refused(client: Client, oidc_provider: ScriptedProvider) -> None:
    now = int(time.time())
    oidc_provider.overrides.update({"iat": now - 3600, "exp": now - 600})
    response = await sign_in(client)
    assert response.status_code == 400
    assert 'data-reason="invalid_token"' in response.text
    assert await User.count() == 0


async def test_wrong_issuer_is_refused(client: Client, oidc_provider: ScriptedProvider) -> None:
    oidc_provider.overrides["iss"] = oidc_provider.issuer + "/"
    response = await sign_in(client)
    assert response.status_code == 400
    assert await User.count() == 0


async def test_token_signed_by_another_key_is_refused(client: Client, oidc_provider: ScriptedProvider) -> None:
    oidc_provider.sign_with = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    response = await sign_in(client)
    assert response.status_code == 400
    assert 'data-reason="invalid_token"' in response.text
    assert await User.count() == 0


async def test_foreign_next_is_replaced_by_the_account_page(client: Client) -> None:
    for foreign in ("https://evil.example/steal", "//evil.example", "/\\evil.example", "javascript:alert(1)"):
        response = await sign_in(client, next_path=foreign)
        assert response.status_code == 303
        assert response.headers["location"] == "/account", foreign


async def test_pages_redirect_to_sign_in_with_next(client: Client) -> None:
    response = await client.get("/account?x=1", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/auth/login?next=%2Faccount%3Fx%3D1"


async def test_htmx_requests_get_hx_redirect_to_sign_in(client: Client) -> None:
    response = await client.get(
        "/account",
        headers={"HX-Request": "true", "HX-Current-URL": f"{client.base_url}/account"},
        follow_redirects=False,
    )
    assert response.status_code == 200
    assert response.headers["hx-redirect"].startswith("/auth/login?next=")


async def test_logout_clears_the_session_and_goes_to_the_provider(
    client: Client, oidc_provider: ScriptedProvider
) -> None:
    await sign_in(client)
    session_cookie = client.cookies.get("billing_session")
    response = await client.post(
        "/auth/logout", headers={"x-csrftoken": client.cookies.get("billing_csrf") or ""}, follow_redirects=False
    )
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith(f"{oidc_provider.issuer}/logout?")
    assert query_of(location)["post_logout_redirect_uri"] == f"{client.base_url}/"
    assert (await account_page(client))[0] == 303
    # The old cookie no longer opens the account either.
    client.cookies.set("billing_session", session_cookie or "")
    assert (await account_page(client))[0] == 303


async def test_logout_without_csrf_token_is_refused(client: Client) -> None:
    await sign_in(client)
    response = await client.post("/auth/logout", follow_redirects=False)
    assert response.status_code == 403
    assert "This form has expired" in response.text
    assert (await account_page(client))[0] == 200
