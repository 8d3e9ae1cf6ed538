"""Console sessions: a signed, HttpOnly, SameSite=Strict cookie, and the CSRF token of
every form.

The cookie holds a random session id and, once logged in, a fingerprint of the API token
used (an HMAC under the session key, never the token): a session ends when its token is
removed from ``[api] tokens``, at ``session_max_age_seconds``, or at logout. Signing is
itsdangerous' timed serializer. The CSRF token of a form is an HMAC of the session id, so
a page of another site can neither read nor forge it; every POST must carry it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

from paysync.settings import Secret

COOKIE = "paysync_console"


@dataclass(frozen=True, slots=True)
class Session:
    sid: str
    fingerprint: str | None = None  # of the token that logged in; None: not logged in


class Sessions:
    def __init__(self, key: bytes, max_age: int, tokens: Sequence[Secret]) -> None:
        self._key = key
        self._max_age = max_age
        self._signer = URLSafeTimedSerializer(key, salt="paysync-console-session")
        self._tokens = tokens

    @property
    def max_age(self) -> int:
        return self._max_age

    def fresh(self, fingerprint: str | None = None) -> Session:
        return Session(sid=secrets.token_urlsafe(18), fingerprint=fingerprint)

    def dump(self, session: Session) -> str:
        return self._signer.dumps([session.sid, session.fingerprint])

    def load(self, cookie: str | None) -> Session | None:
        """The session in a cookie, if it is signed by us, young enough and well formed."""
        if not cookie:
            return None
        try:
            sid, fingerprint = self._signer.loads(cookie, max_age=self._max_age)
        except (BadSignature, ValueError, TypeError):
            return None
        if not isinstance(sid, str) or not (fingerprint is None or isinstance(fingerprint, str)):
            return None
        return Session(sid=sid, fingerprint=fingerprint)

    def fingerprint(self, token: str) -> str:
        return hmac.new(self._key, b"token:" + token.encode(), hashlib.sha256).hexdigest()

    def authenticated(self, session: Session | None) -> bool:
        """Logged in with a token that is still configured."""
        if session is None or session.fingerprint is None:
            return False
        current = [self.fingerprint(t.reveal()) for t in self._tokens]
        matched = False
        for known in current:  # every one: the time taken does not tell which matched
            matched |= hmac.compare_digest(known, session.fingerprint)
        return matched

    def csrf_token(self, session: Session) -> str:
        return hmac.new(self._key, b"csrf:" + session.sid.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: Session | None, given: str | None) -> bool:
        if session is None or not given:
            return False
        return hmac.compare_digest(self.csrf_token(session), given)
