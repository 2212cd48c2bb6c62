"""Which media a content item may carry, judged from the file's bytes (never its name or header)."""

import filetype

from platform_api.errors import ApiError

SNIFF_BYTES = 8192
ACCEPTED: dict[str, frozenset[str]] = {
    "video": frozenset({"video/mp4", "video/webm", "video/quicktime", "video/x-matroska", "video/x-m4v"}),
    "exercise_guide": frozenset({"image/jpeg", "image/png", "image/gif", "image/webp", "video/mp4", "video/webm"}),
    "article": frozenset({"application/pdf", "image/jpeg", "image/png", "image/webp"}),
}


def sniff(head: bytes, *, kind: str) -> tuple[str, str]:
    """(MIME type, extension) of the file starting with `head`; 415 when unknown or wrong for `kind`."""
    guess = filetype.guess(head)
    accepted = ACCEPTED[kind]
    if guess is None:
        raise ApiError(
            415, f"the file's type cannot be recognised from its content; a {kind} takes {', '.join(sorted(accepted))}"
        )
    if guess.mime not in accepted:
        raise ApiError(415, f"{guess.mime} is not accepted for a {kind}; use {', '.join(sorted(accepted))}")
    return guess.mime, guess.extension
