"""The password policy: long enough, not common, not the username, not easily guessed."""
from __future__ import annotations

import secrets

import pytest

from incidents.auth import MIN_PASSWORD_LENGTH, password_problem


@pytest.mark.parametrize("password", ["12345678", "password", "qwertyuiop", "1234567890", "password123",
                                      "iloveyou2024", "qwertyuiop123", "woaini1314", "Password123!",
                                      "aaaaaaaaaaaa", "abcdefghijkl", "password-123",
                                      "Password2024!", "P@ssw0rd1234", "abc123456789"])
def test_common_and_guessable_passwords_are_refused(password):
    assert password_problem(password, username="someone") is not None


def test_short_passwords_are_refused():
    problem = password_problem("Zq8#kP2!x", username="someone")
    assert problem and str(MIN_PASSWORD_LENGTH) in problem


@pytest.mark.parametrize("password", ["chen-dispatcher", "CHEN-DISPATCHER-2026", "dispatcher.chen"])
def test_a_password_built_on_the_username_is_refused(password):
    assert password_problem(password, username="chen-dispatcher") or password_problem(
        password, username="dispatcher.chen")


@pytest.mark.parametrize("password", ["correct-horse-battery", "Xihu-lake-at-dawn-7", "a-long-password",
                                      "browser-test-pw-viewer", "bench-password-1"])
def test_long_uncommon_passwords_pass(password):
    assert password_problem(password, username="chen") is None


def test_generated_demo_passwords_always_pass():
    # data_sources.seed makes demo passwords with secrets.token_urlsafe(9)
    for username in ("viewer", "leader", "dispatcher", "department", "inspector", "admin") * 40:
        password = secrets.token_urlsafe(9)
        assert password_problem(password, username=username) is None, password
