"""Participant tokens: HS256 JWTs that name a room, a participant and its grants."""

from __future__ import annotations

from typing import Any

import attrs

from ._errors import TokenError
from .codes import Code

ALGORITHM = "HS256"


def _text(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if type(value) is not str or not value or len(value) > 256:
        raise TokenError(
            f"{attribute.name} must be a string of 1 to 256 characters", Code.TOKEN_INVALID
        )


@attrs.frozen(kw_only=True)
class ParticipantToken:
    """Who may join which room, and what they may do there."""

    room: str = attrs.field(validator=_text)
    """The only room this token admits to."""
    name: str = attrs.field(validator=_text)
    """The participant's display name."""
    role: str = attrs.field(default="user", validator=_text)
    """Free-form role (``user``, ``agent``, ``service``...)."""
    can_send: bool = True
    """Grant: send direct messages."""
    can_broadcast: bool = True
    """Grant: broadcast to the room."""
    can_list: bool = True
    """Grant: see the room's participants (presence snapshot and diffs)."""
    can_history: bool = True
    """Grant: read the room's history (``history`` requests)."""
    hidden: bool = False
    """Enable messaging without entering presence: the others get no ``joined``/``left`` for
    this participant and no snapshot lists it; it may send and broadcast (as its grants say)
    but receives no messages. For one-shot senders such as ``roomwire messaging send``."""
    intercept: bool = False
    """Grant: attach as the room's service (docs/PROTOCOL.md §23): see every message before
    it goes down, decide it, speak as any member and create puppets."""
    expires_at: float | None = None
    """Unix time after which the token is refused; None for no expiry."""

    def to_jwt(self, secret: str | bytes) -> str:
        """Sign this token with HS256."""
        import jwt  # noqa: PLC0415 - PyJWT imports urllib (and so socket): load it on use

        claims: dict[str, Any] = {
            "room": self.room,
            "name": self.name,
            "role": self.role,
            "grants": {
                "send": self.can_send,
                "broadcast": self.can_broadcast,
                "list": self.can_list,
                # Only when they differ from the default: other tokens stay byte-for-byte
                # what they were.
                **({} if self.can_history else {"history": False}),
                **({"hidden": True} if self.hidden else {}),
                **({"intercept": True} if self.intercept else {}),
            },
        }
        if self.expires_at is not None:
            claims["exp"] = self.expires_at
        return jwt.encode(claims, secret, algorithm=ALGORITHM)

    @classmethod
    def from_jwt(
        cls, token: str, secret: str | bytes, *, now: float | None = None
    ) -> ParticipantToken:
        """Verify ``token`` and return its contents, or raise :class:`TokenError`.

        ``now`` (Unix time) is compared with ``exp``; the room server always passes it. When it
        is None, PyJWT checks ``exp`` against the system clock instead.
        """
        import jwt  # noqa: PLC0415 - see to_jwt

        try:
            claims = jwt.decode(
                token,
                secret,
                algorithms=[ALGORITHM],
                options={
                    # With ``now`` given, every time claim is checked against it below.
                    "verify_exp": now is None,
                    "verify_nbf": now is None,
                    "verify_iat": now is None,
                    "require": ["room", "name"],
                },
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("the token has expired", Code.TOKEN_EXPIRED) from None
        except jwt.InvalidSignatureError:
            raise TokenError(
                "the token's signature does not match", Code.TOKEN_BAD_SIGNATURE
            ) from None
        except jwt.InvalidAlgorithmError:
            raise TokenError(
                "the token must be signed with HS256", Code.TOKEN_BAD_ALGORITHM
            ) from None
        except jwt.PyJWTError as exc:
            raise TokenError(f"the token is not valid: {exc}", Code.TOKEN_INVALID) from None
        exp, nbf = claims.get("exp"), claims.get("nbf")
        for name, value in (("exp", exp), ("nbf", nbf)):
            if value is not None and type(value) not in (int, float):
                raise TokenError(f"the token's {name} must be a number", Code.TOKEN_INVALID)
        if now is not None and exp is not None and now >= exp:
            raise TokenError("the token has expired", Code.TOKEN_EXPIRED)
        if now is not None and nbf is not None and now < nbf:
            raise TokenError("the token is not valid yet (nbf)", Code.TOKEN_INVALID)
        grants = claims.get("grants", {})
        if type(grants) is not dict or any(type(v) is not bool for v in grants.values()):
            raise TokenError("the token's grants must map names to booleans", Code.TOKEN_INVALID)
        return cls(
            room=claims["room"],
            name=claims["name"],
            role=claims.get("role", "user"),
            can_send=grants.get("send", True),
            can_broadcast=grants.get("broadcast", True),
            can_list=grants.get("list", True),
            can_history=grants.get("history", True),
            hidden=grants.get("hidden", False),
            intercept=grants.get("intercept", False),
            expires_at=exp,
        )
