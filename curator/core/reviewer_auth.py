"""Reviewer accounts and sessions: tokens stored as SHA-256 digests (as outcome keys are, in a
table of their own), sessions as signed cookies, and CSRF tokens bound to a session.

The signing secret lives in the store's shared settings, so every ingress replica honours a
session another one made, and a restart logs nobody out.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from itsdangerous import BadSignature, URLSafeTimedSerializer

from experiments.review_store import ReviewStore

SECRET_KEY = "review_session_secret"
TOKEN_BYTES = 32


def new_token() -> str:
    """A reviewer token: shown once, stored only as its digest."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ReviewerSessions:
    """Signs and reads session cookies; makes and checks CSRF tokens."""

    def __init__(self, store: ReviewStore, max_age_s: float) -> None:
        self._store = store
        self.max_age_s = max_age_s
        self._secret: str | None = None

    @property
    def secret(self) -> str:
        if self._secret is None:
            self._secret = self._store.shared_value(SECRET_KEY, lambda: secrets.token_hex(32))
        return self._secret

    def _serializer(self) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self.secret, salt="curator-review-session")

    def log_in(self, token: str) -> str | None:
        """A session cookie value for the reviewer whose token this is; None when no enabled
        reviewer has it."""
        reviewer = self._store.reviewer_by_digest(token_digest(token))
        if reviewer is None:
            return None
        return self._serializer().dumps({"reviewer": reviewer.name,
                                         "sid": secrets.token_urlsafe(16)})

    def reviewer(self, cookie: str | None) -> tuple[str, str] | None:
        """(reviewer, session id) of a valid, unexpired cookie of a still-enabled reviewer."""
        if not cookie:
            return None
        try:
            data = self._serializer().loads(cookie, max_age=int(self.max_age_s))
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        name, sid = data.get("reviewer"), data.get("sid")
        if not isinstance(name, str) or not isinstance(sid, str):
            return None
        # Disabling a reviewer ends their sessions at once, not when the cookie expires.
        return (name, sid) if self._store.is_enabled(name) else None

    def csrf_token(self, binding: str) -> str:
        """The form token of a session id (or of the login form's nonce cookie)."""
        return hmac.new(self.secret.encode(), f"csrf:{binding}".encode(),
                        hashlib.sha256).hexdigest()

    def csrf_ok(self, binding: str | None, token: str | None) -> bool:
        if not binding or not token:
            return False
        return hmac.compare_digest(self.csrf_token(binding), token)
