"""Redaction of reprs, table-driven: the usual shapes of secrets never come out; harmless text
comes out as it went in."""

from __future__ import annotations

import pytest

from leakwatch.refgraph.redact import SCRUB, scrubbed_repr


def scrub(text: str) -> str:
    for pattern, replacement in SCRUB:
        text = pattern.sub(replacement, text)
    return text


# (the text, the secret in it that must not come out)
SECRETS = [
    ("postgres://user:hunter2@db/x", "hunter2"),
    ("mysql://admin:S3cr3t!@10.0.0.5:3306/app", "S3cr3t!"),
    ("redis://:hunter2@cache:6379/0", "hunter2"),
    ("https://bob:swordfish@example.com/private", "swordfish"),
    ("amqp://guest:guestpass@rabbit//", "guestpass"),
    ("mypassword hunter2", "hunter2"),
    ("the secret opensesame", "opensesame"),
    ("password=hunter2", "hunter2"),
    ("passwd: hunter2", "hunter2"),
    ("PASSWORD => hunter2", "hunter2"),
    ("db_password -> hunter2", "hunter2"),
    ('{"password": "hunter2"}', "hunter2"),
    ("{'api_key': 'abcdefghij'}", "abcdefghij"),
    ("apikey=abcdefghij", "abcdefghij"),
    ("X-API-Key: qwertyuiop", "qwertyuiop"),
    ("access_key_id=AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    ("AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI"),
    ("AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY", "AIzaSyD-9tSrke72PouQMnMX"),
    ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "4eC39HqLyjWDarjtT1zdp7dc"),
    ("rk_test_51Hxyzabcdefgh", "51Hxyzabcdefgh"),
    ("xoxb-123456789012-abcdefghijkl", "123456789012-abcdefghijkl"),
    ("ghp_16C7e42F292c6912E7710c838347Ae178B4a", "16C7e42F292c6912E7710c838347Ae178B4a"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", "eyJhbGciOiJIUzI1NiJ9"),
    ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
    ("token abc123def456", "abc123def456"),
    ("auth_token=zzzyyyxxx", "zzzyyyxxx"),
    ("session_id=f00dface", "f00dface"),
    ("cookie: sid=deadbeefcafe", "deadbeefcafe"),
    ("client_secret: topsecretvalue", "topsecretvalue"),
    ("private_key=abcdef", "abcdef"),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA", "MIIEowIBAAKCAQEA"),
    ("credentials=alice:wonderland", "wonderland"),
    ("a random id 9f86d081884c7d659a2feaa0c55ad015", "9f86d081884c7d659a2feaa0c55ad015"),
    ("signature=c2lnbmF0dXJl", "c2lnbmF0dXJl"),
    # Values in the shapes reprs give them: bytes, lists, pairs, quoted with spaces.
    ("{'password': b'hunter2'}", "hunter2"),
    ("{'passwd': ['hunter2']}", "hunter2"),
    ("[('password', 'hunter2')]", "hunter2"),
    ("{'api_key': 'correct horse battery'}", "horse battery"),
    ('Settings(secret_key="two words")', "two words"),
]

HARMLESS = [
    "Session(user='alice', n=3)",
    "count=42",
    "status=active",
    "[1, 2, 3]",
    "{'n': 1, 'name': 'job'}",
    "http://example.com/path/to/page",
    "postgres://db:5432/app",
    "GET /api/v1/users?page=2",
    "app/views.py:42",
    "2026-12-07 03:35:09",
    "ValueError('bad input')",
    "<Node id=17 children=3>",
    "Order(total=19.99, currency='EUR')",
    "deque([], maxlen=100)",
    "True",
    "None",
    "b'hello'",
    "frozenset({'a', 'b'})",
    "Point(x=1.5, y=-2.0)",
    "User(name='bob', admin=False)",
    "retries=3 timeout=10",
    "level=INFO logger=app",
    "Job(queue='default', priority=5)",
    "<function handler at 0x7f>",
    "mode='rw' size=4096",
    "Path('/srv/app/data.csv')",
    "Cache(hits=10, misses=2)",
    "the quick brown fox",
    "Event(kind='click', x=10, y=20)",
    "Config(debug=False, workers=4)",
    "[('user', 'alice'), ('role', 'admin')]",
    "{'tags': ['a b', 'c']}",
]


@pytest.mark.parametrize(("text", "secret"), SECRETS, ids=[t[:30] for t, _ in SECRETS])
def test_secrets_do_not_come_out(text, secret):
    out = scrub(text)
    assert secret not in out, out


@pytest.mark.parametrize("text", HARMLESS)
def test_harmless_text_comes_out_as_it_went_in(text):
    assert scrub(text) == text


def test_the_table_has_enough_of_each():
    assert len(SECRETS) >= 30 and len(HARMLESS) >= 30


def test_a_repr_with_a_url_password_is_scrubbed_whole():
    class Conn:
        def __repr__(self) -> str:
            return "Conn(dsn='postgres://user:hunter2@db/x', note='mypassword hunter2')"

    out = scrubbed_repr(Conn())
    assert "hunter2" not in out and "postgres://user:<redacted>@db/x" in out
