"""consumers/queries.py: which profile keys a user reference may mean."""

from __future__ import annotations

import pytest

from segstream.consumers.queries import candidates


@pytest.mark.parametrize("key", ["u:cust-1", "a:0f3c-anon", "e:" + "ab" * 32])
def test_typed_keys_are_kept_as_they_are(key):
    assert candidates(key) == [key]


@pytest.mark.parametrize("user", ["cust-1", "42", "someone@example.com", "x:y"])
def test_bare_ids_try_user_id_then_anonymous_id(user):
    assert candidates(user) == ["u:" + user, "a:" + user]


def test_prefix_must_be_at_the_start():
    assert candidates("cust-u:1") == ["u:cust-u:1", "a:cust-u:1"]


def test_prefix_without_colon_is_a_bare_id():
    assert candidates("user-1") == ["u:user-1", "a:user-1"]
