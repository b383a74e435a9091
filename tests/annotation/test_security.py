"""Secrets, API tokens, login lockout and throttling, and the security headers (issue: hostile input and security)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from tests.conftest import connection_kept, http_scope
from webapp import env as webapp_env

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "a-long-test-password-9"


@pytest.fixture
def member(lead, vessel_project):
    lead.set_password(PASSWORD)
    lead.save()
    return lead


def _token(client: APIClient, username: str, password: str = PASSWORD):
    return client.post(reverse("api:token"), {"username": username, "password": password})


def _me(token: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client.get(reverse("api:me")).status_code


# ---------------------------------------------------------------------------------------------------- secrets
def test_local_keys_are_random_private_and_stable(tmp_path, monkeypatch):
    monkeypatch.setattr(webapp_env, "LOCAL_DATA", tmp_path / "var")
    secret = webapp_env.local_key("secret")
    assert webapp_env.local_key("secret") == secret  # the second process reads the first one's key
    assert webapp_env.local_key("pseudonym") != secret
    assert len(secret) >= webapp_env.MIN_KEY_LENGTH
    assert stat.S_IMODE((tmp_path / "var" / "secret.key").stat().st_mode) == 0o600
    monkeypatch.setattr(webapp_env, "LOCAL_DATA", tmp_path / "other")
    assert webapp_env.local_key("secret") != secret  # another checkout, another key


def test_the_pseudonym_key_is_independent_of_the_secret_key():
    assert settings.PSEUDONYM_KEY != settings.SECRET_KEY
    assert settings.SECRET_KEY not in webapp_env.DOCUMENTED_DEFAULT_KEYS


def _production(**keys) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LUMEN_")}
    environment.update(
        DJANGO_SETTINGS_MODULE="webapp.settings.production",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/unused",
        **keys,
    )
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


STRONG = "k" * 20 + "abcdefghijklmnopqrstuvwxyz0123456789"
OTHER = "p" * 20 + "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
THIRD = "c" * 20 + "0123456789abcdefghijKLMNOPQRSTUVWXYZ"


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"LUMEN_PSEUDONYM_KEY": OTHER}, "Set the LUMEN_SECRET_KEY environment variable"),
        ({"LUMEN_SECRET_KEY": STRONG}, "Set the LUMEN_PSEUDONYM_KEY environment variable"),
        (
            {"LUMEN_SECRET_KEY": "lumen-local-development-key-change-me-in-production", "LUMEN_PSEUDONYM_KEY": OTHER},
            "LUMEN_SECRET_KEY is the documented development default",
        ),
        ({"LUMEN_SECRET_KEY": STRONG, "LUMEN_PSEUDONYM_KEY": "short-key"}, "LUMEN_PSEUDONYM_KEY is too weak"),
        ({"LUMEN_SECRET_KEY": STRONG, "LUMEN_PSEUDONYM_KEY": STRONG}, "must differ from LUMEN_SECRET_KEY"),
        ({"LUMEN_SECRET_KEY": STRONG, "LUMEN_PSEUDONYM_KEY": OTHER}, "Set the LUMEN_CREDENTIALS_KEY environment"),
        (
            {"LUMEN_SECRET_KEY": STRONG, "LUMEN_PSEUDONYM_KEY": OTHER, "LUMEN_CREDENTIALS_KEY": OTHER},
            "LUMEN_CREDENTIALS_KEY must differ",
        ),
    ],
)
def test_production_refuses_missing_default_weak_or_shared_keys(keys, message):
    result = _production(**keys)
    assert result.returncode != 0
    assert message in result.stderr


def test_production_settings_pass_the_deployment_checks():
    result = _production(LUMEN_SECRET_KEY=STRONG, LUMEN_PSEUDONYM_KEY=OTHER, LUMEN_CREDENTIALS_KEY=THIRD)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


# ---------------------------------------------------------------------------------------------------- tokens
def test_every_login_gets_its_own_expiring_token_and_logout_revokes_only_that_one(member):
    client = APIClient()
    first, second = _token(client, member.username), _token(client, member.username)
    assert first.status_code == second.status_code == 200
    assert first.json()["token"] != second.json()["token"]
    expiry = timezone.datetime.fromisoformat(first.json()["expiry"])
    assert timedelta(hours=9) < expiry - timezone.now() <= settings.REST_KNOX["TOKEN_TTL"]
    a, b = first.json()["token"], second.json()["token"]
    assert _me(a) == _me(b) == 200
    client.credentials(HTTP_AUTHORIZATION=f"Token {a}")
    assert client.post(reverse("api:token-logout")).status_code == 204
    assert _me(a) == 401 and _me(b) == 200
    c = _token(APIClient(), member.username).json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {b}")
    assert client.post(reverse("api:token-logout-all")).status_code == 204
    assert _me(b) == 401 and _me(c) == 401


def test_an_expired_token_is_refused_and_deleted(member):
    token = _token(APIClient(), member.username).json()["token"]
    AuthToken.objects.filter(user=member).update(expiry=timezone.now() - timedelta(seconds=1))
    assert _me(token) == 401
    assert not AuthToken.objects.filter(user=member).exists()


def test_a_malformed_token_is_refused_not_an_error(member):
    token = _token(APIClient(), member.username).json()["token"]
    for header in (f"Token {token[:-1]}x", "Token \x00" + token[1:], f"Token {token[:15]}", "Token \xff\xfe"):
        response = APIClient().get(reverse("api:me"), HTTP_AUTHORIZATION=header)
        assert response.status_code == 401, (header, response.content)
        assert response.json()["detail"] == "Invalid token."
    assert _me(token) == 200


def test_a_password_change_revokes_every_token(member):
    tokens = [_token(APIClient(), member.username).json()["token"] for _ in range(2)]
    member.last_login = timezone.now()
    member.save(update_fields=["last_login"])  # other saves leave tokens alone
    assert [_me(t) for t in tokens] == [200, 200]
    member.set_password("another-long-password-7")
    member.save()
    assert [_me(t) for t in tokens] == [401, 401]


# ---------------------------------------------------------------------------------------------------- lockout
def test_repeated_failed_token_logins_lock_the_account_for_that_client(member):
    client = APIClient()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _token(client, member.username, "wrong").status_code == 400
    locked = _token(client, member.username, "wrong")
    assert locked.status_code == 429 and "locked" in locked.json()["detail"]
    assert _token(client, member.username).status_code == 429  # even with the right password
    other = APIClient(REMOTE_ADDR="10.9.8.7")
    assert _token(other, member.username).status_code == 200  # another address is not locked out


def test_repeated_failed_form_logins_lock_the_account(client, member):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        page = client.post(reverse("login"), {"username": member.username, "password": "wrong"})
        assert page.status_code == 200 and b"didn't match" in page.content
    page = client.post(reverse("login"), {"username": member.username, "password": PASSWORD})
    assert page.status_code == 302  # a success resets the count
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        page = client.post(reverse("login"), {"username": member.username, "password": "wrong"})
    assert page.status_code == 429 and b"Too many failed logins" in page.content
    page = client.post(reverse("login"), {"username": member.username, "password": PASSWORD})
    assert page.status_code == 429
    admin = client.post(reverse("admin:login"), {"username": member.username, "password": PASSWORD})
    assert admin.status_code == 429  # the admin's login shares the lock


def test_the_token_endpoint_is_throttled_per_client():
    client = APIClient()
    rate = int(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["login"].split("/")[0])
    answers = [client.post(reverse("api:token"), {}).status_code for _ in range(rate + 1)]
    assert answers[:rate] == [400] * rate  # each names the missing fields
    assert answers[rate] == 429
    assert "Retry-After" in client.post(reverse("api:token"), {})


# ---------------------------------------------------------------------------------------------------- headers
def test_pages_and_the_api_carry_a_content_security_policy(client, member):
    client.force_login(member)
    for url in (reverse("home"), reverse("swagger-ui")):
        policy = client.get(url)["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "object-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in client.get(reverse("home"))["Content-Security-Policy"]


# ---------------------------------------------------------------------------------------------------- body limits
def _asgi(path: str, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes, int]:
    """Call the ASGI application as the server would; return the status, the body and how many chunks it read."""
    import asyncio

    from asgiref.sync import async_to_sync

    from webapp.asgi import application

    scope = http_scope("POST", path, headers)
    pending = list(chunks)
    read = 0
    answer: dict = {"body": b""}

    async def receive():
        nonlocal read
        if not pending:  # the body is complete; the client waits for the answer
            await asyncio.Event().wait()
        read += 1
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    async def send(message):
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    with connection_kept():
        async_to_sync(application)(scope, receive, send)
    return answer["status"], answer["body"], read


def test_a_chunked_body_is_cut_off_at_the_limit(settings):
    settings.LUMEN_MAX_REQUEST_BYTES = 3 * 1024
    status, body, read = _asgi("/api/labels/", [bytes(1024)] * 100, [(b"transfer-encoding", b"chunked")])
    assert status == 413 and b"limit" in body
    assert read == 4  # stopped at the chunk that passed 3 KiB, 96 chunks never read


def test_a_declared_length_over_the_limit_or_not_a_number_is_refused_unread(settings):
    settings.LUMEN_MAX_REQUEST_BYTES = 1024
    status, body, read = _asgi("/api/labels/", [bytes(2048)], [(b"content-length", b"2048")])
    assert (status, read) == (413, 0) and b"2048 bytes" in body
    status, body, read = _asgi("/api/labels/", [b"{}"], [(b"content-length", b"12abc")])
    assert (status, read) == (400, 0) and b"Content-Length" in body


def test_an_upload_is_read_only_with_valid_credentials(vessel_project, member, client):
    path = reverse("api:import-list", args=[vessel_project.slug])
    form = [(b"content-type", b"multipart/form-data; boundary=x"), (b"content-length", b"6")]
    for credentials in ([], [(b"authorization", b"Token not-a-real-token")], [(b"cookie", b"sessionid=forged")]):
        status, body, read = _asgi(path, [b"--x--\r"], form + credentials)
        assert (status, read) == (401, 0) and b"Token <key>" in body
    token = _token(APIClient(), member.username).json()["token"].encode()
    status, body, read = _asgi(path, [b"--x--\r"], [*form, (b"authorization", b"Token " + token)])
    assert read == 1 and status == 400  # read and answered by the view: the upload holds no files
    client.force_login(member)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    status, body, read = _asgi(path, [b"--x--\r"], [*form, (b"cookie", cookie)])
    assert read == 1 and status == 403  # read; the view then wants the CSRF token a browser sends


# ---------------------------------------------------------------------------------------------------- leaks
def test_a_hidden_object_reads_exactly_like_a_missing_one(vessel_project, annotator, stranger, client_for):
    from annotation.services import import_run
    from tests import dicom_samples as samples
    from tests.annotation.test_ingest import source

    import_run(project=vessel_project, sources=[source("run.dcm", samples.xa_bytes())])
    item = vessel_project.items.get()
    outsider = client_for(stranger)
    pairs = [
        ("get", reverse("api:member-list", args=[vessel_project.slug]), reverse("api:member-list", args=["nope"]), {}),
        (
            "post",
            reverse("api:project-next", args=[vessel_project.slug]),
            reverse("api:project-next", args=["nope"]),
            {},
        ),
        ("post", reverse("api:item-adjudicate", args=[item.pk]), reverse("api:item-adjudicate", args=[10**9]), {}),
    ]
    for method, hidden, missing, body in pairs:
        a, b = (
            getattr(outsider, method)(hidden, body, format="json"),
            getattr(outsider, method)(missing, body, format="json"),
        )
        assert (a.status_code, a.json()) == (b.status_code, b.json()) and a.status_code == 404, (hidden, a.json())
    labels = reverse("api:label-list")
    a = outsider.post(labels, {"item": item.pk, "payload": {"vessel": "RCA"}}, format="json")
    b = outsider.post(labels, {"item": 10**9, "payload": {"vessel": "RCA"}}, format="json")
    assert a.status_code == b.status_code == 400
    assert a.json()["item"][0].replace(str(item.pk), "N") == b.json()["item"][0].replace(str(10**9), "N")


def test_api_errors_outside_any_view_are_json(client, member):
    client.force_login(member)
    answer = client.get("/api/no-such-endpoint/")
    assert answer.status_code == 404 and answer["Content-Type"] == "application/json"
    assert "/api/no-such-endpoint/" in answer.json()["detail"]
    assert client.get("/no-such-page/")["Content-Type"].startswith("text/html")
