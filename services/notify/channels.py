"""The channels that reach people: e-mail over SMTP, the WeCom / DingTalk / Feishu group robots.

(The console's feed is not sent anywhere: it is a table the ``/feed`` endpoints read.) A channel raises
:class:`Unreachable` when this person cannot be reached on it at all (no e-mail address, channel not configured),
and :class:`SendFailed` when an attempt failed (``retryable``: worth another attempt later).
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import aiohttp
import aiosmtplib

from services.notify.domain import robots
from services.notify.domain.notices import Person
from services.notify.messages import Message

# The robots' "too many messages" codes: WeCom 45009, DingTalk 130101, Feishu 11232.
RATE_LIMITED = frozenset({45009, 130101, 11232})


class Unreachable(Exception):
    pass


class SendFailed(Exception):
    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class Channel(Protocol):
    name: str

    async def send(self, person: Person | None, message: Message, now: datetime) -> None: ...


class EmailChannel:
    """SMTP: ``smtp://[user:password@]host[:port]`` upgrades with STARTTLS when the server offers it;
    ``smtps://`` speaks TLS from the start."""

    name = "email"

    def __init__(self, smtp_url: str | None, sender: str, timeout: float) -> None:
        self.sender = sender
        self.timeout = timeout
        self.options: dict[str, Any] | None = None
        if smtp_url:
            url = urlsplit(smtp_url)
            if url.scheme not in ("smtp", "smtps") or not url.hostname:
                raise ValueError("LEADFLOW_SMTP_URL must be smtp://host[:port] or smtps://host[:port]")
            tls = url.scheme == "smtps"
            self.options = {
                "hostname": url.hostname,
                "port": url.port or (465 if tls else 587),
                "username": unquote(url.username) if url.username else None,
                "password": unquote(url.password) if url.password else None,
                "use_tls": tls,
                "start_tls": False if tls else None,  # None: STARTTLS when the server offers it
            }

    async def send(self, person: Person | None, message: Message, now: datetime) -> None:
        if self.options is None:
            raise Unreachable("no SMTP server configured (LEADFLOW_SMTP_URL)")
        if person is None or not person.email:
            raise Unreachable("no e-mail address in the directory")
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = formataddr((person.display_name, person.email))
        mail["Subject"] = message.subject
        mail["Date"] = format_datetime(now)
        mail["Message-ID"] = make_msgid(domain="leadflow")
        mail.set_content(message.body)
        try:
            await aiosmtplib.send(mail, timeout=self.timeout, **self.options)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise SendFailed(f"the SMTP server refused {person.email}: {exc}", retryable=False) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise SendFailed(f"SMTP: {type(exc).__name__}: {exc}") from exc


class RobotChannel:
    """A group robot's webhook (WeCom, DingTalk or Feishu); the person is @-mentioned by their mobile number."""

    def __init__(self, name: str, url: str | None, secret: str | None, timeout: float) -> None:
        self.name = name
        self.url = url
        self.secret = secret
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def request(self, person: Person | None, message: Message, now: datetime) -> tuple[str, dict[str, Any]]:
        assert self.url is not None
        phone = person.phone if person else None
        if self.name == "wecom":
            return self.url, robots.wecom(message.subject, message.body, phone)
        if self.name == "dingtalk":
            return robots.dingtalk_url(self.url, self.secret, int(now.timestamp() * 1000)), robots.dingtalk(
                message.subject, message.body, phone
            )
        return self.url, robots.feishu(message.subject, message.body, self.secret, int(now.timestamp()))

    async def send(self, person: Person | None, message: Message, now: datetime) -> None:
        if not self.url:
            raise Unreachable(f"no {self.name} robot configured")
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        url, body = self.request(person, message, now)
        try:
            async with self._session.post(url, json=body, allow_redirects=False) as response:
                answer = await response.json(content_type=None) if response.status == 200 else None
                if response.status != 200:
                    raise SendFailed(
                        f"{self.name} answered HTTP {response.status}", retryable=response.status >= 500 or response.status == 429
                    )
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            raise SendFailed(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        code = (answer or {}).get("errcode", (answer or {}).get("code", (answer or {}).get("StatusCode", 0)))
        if code not in (0, None):
            # Sending too fast is the one refusal that goes away by itself.
            raise SendFailed(f"{self.name} refused the message: {answer}", retryable=code in RATE_LIMITED)

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
