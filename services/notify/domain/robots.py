"""Group robots' message formats and signatures (WeCom, DingTalk, Feishu), as their open platforms define them.

- WeCom group robot: ``{"msgtype": "text", "text": {"content", "mentioned_mobile_list"}}``, no signature (the
  robot's URL carries its key).
- DingTalk custom robot, signed: ``timestamp`` (ms) and ``sign`` query parameters, ``sign`` = URL-encoded base64 of
  HMAC-SHA256 over ``"{timestamp}\\n{secret}"`` keyed by the secret; body a markdown message with ``at.atMobiles``.
- Feishu custom bot, signed: ``timestamp`` (s) and ``sign`` in the body, ``sign`` = base64 of HMAC-SHA256 over
  the empty string keyed by ``"{timestamp}\\n{secret}"``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any
from urllib.parse import quote_plus


def _mobile(phone: str | None) -> list[str]:
    # The robots @-mention by the mobile number as the person's account has it: mainland numbers without +86.
    if not phone:
        return []
    return [phone.removeprefix("+86")]


def wecom(subject: str, body: str, phone: str | None) -> dict[str, Any]:
    return {"msgtype": "text", "text": {"content": f"{subject}\n\n{body}", "mentioned_mobile_list": _mobile(phone)}}


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode())


def dingtalk_url(url: str, secret: str | None, timestamp_ms: int) -> str:
    if not secret:
        return url
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}timestamp={timestamp_ms}&sign={dingtalk_sign(secret, timestamp_ms)}"


def dingtalk(subject: str, body: str, phone: str | None) -> dict[str, Any]:
    mobiles = _mobile(phone)
    mention = "".join(f" @{m}" for m in mobiles)
    return {
        "msgtype": "markdown",
        "markdown": {"title": subject, "text": f"### {subject}\n\n{body}{mention}"},
        "at": {"atMobiles": mobiles, "isAtAll": False},
    }


def feishu_sign(secret: str, timestamp_s: int) -> str:
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def feishu(subject: str, body: str, secret: str | None, timestamp_s: int) -> dict[str, Any]:
    message: dict[str, Any] = {"msg_type": "text", "content": {"text": f"{subject}\n\n{body}"}}
    if secret:
        message = {"timestamp": str(timestamp_s), "sign": feishu_sign(secret, timestamp_s), **message}
    return message
