"""The console's form posts: urlencoded parsing, CSRF tokens and the same-origin check.

Every form carries a CSRF token in ``csrf_token``: the session's own token once signed in; on
the sign-in form (no session yet) a random token that must also come back in the short-lived
``qp_console_csrf`` cookie (double submit). A post whose token does not match, or whose
``Origin`` (or ``Sec-Fetch-Site``) says it comes from another site, is refused before anything
is read or written. Bodies are parsed with :func:`urllib.parse.parse_qs` (no multipart, no
python-multipart dependency); the body size is already bounded by the app's 64 KiB limit.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request

#: Name of the CSRF field of every form.
CSRF_FIELD = "csrf_token"
#: Cookie holding the sign-in form's CSRF token (before a session exists).
SIGNIN_CSRF_COOKIE = "qp_console_csrf"
#: Most fields a console form may post.
MAX_FIELDS = 8
#: Longest value of one field (a note), in characters.
MAX_VALUE_CHARS = 2000


class FormError(ValueError):
    """A form body that cannot be read (not UTF-8, too many fields, a value too long)."""


def new_token() -> str:
    """A fresh random CSRF token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def parse_form(body: bytes) -> dict[str, str]:
    """Parses an ``application/x-www-form-urlencoded`` body.

    Args:
        body: The raw body.

    Returns:
        Field -> value (the first value of a repeated field).

    Raises:
        FormError: Invalid UTF-8 or percent-encoding, more than :data:`MAX_FIELDS` fields,
            or a value longer than :data:`MAX_VALUE_CHARS`.
    """
    try:
        text = body.decode("utf-8")
        pairs = parse_qs(text, keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict")
    except UnicodeDecodeError:
        raise FormError("the form is not valid UTF-8") from None
    except ValueError:
        raise FormError(f"the form has more than {MAX_FIELDS} fields") from None
    form = {name: values[0] for name, values in pairs.items()}
    for name, value in form.items():
        if len(value) > MAX_VALUE_CHARS:
            raise FormError(f"field {name!r} is longer than {MAX_VALUE_CHARS} characters")
    return form


def tokens_match(expected: str | None, given: str | None) -> bool:
    """Whether both tokens are present and equal (compared in constant time)."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def same_origin(request: Request) -> bool:
    """False when the browser says the post comes from another site.

    ``Sec-Fetch-Site: cross-site`` or ``same-site`` refuses; so does an ``Origin`` whose host
    is not the request's ``Host`` (``Origin: null`` included). Without either header (old
    browsers, scripts) the CSRF token alone decides.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site.lower() not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "").lower()
    try:
        return bool(host) and urlsplit(origin).netloc.lower() == host
    except ValueError:
        return False


def safe_next(target: str | None, default: str) -> str:
    """A redirect target inside the console (``/console/...``), else ``default``.

    Anything that could leave the site (``//host``, ``/console/..//``, schemes, backslashes,
    control characters) falls back to ``default``.
    """
    if (
        not target
        or not target.startswith("/console/")
        or "//" in target
        or "\\" in target
        or ".." in target
        or any(ord(c) < 32 or ord(c) == 127 for c in target)
        or len(target) > 512
    ):
        return default
    return target
