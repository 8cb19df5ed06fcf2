"""Messages from templates (Jinja2, one per kind and language under ``templates/``), in the reader's time zone.

A template sets ``subject`` and renders the body (plain text, which the robots show as markdown); it gets the
notice's parameters, the reader's name, and ``at(t)`` (a time in the reader's zone) and ``left(t)`` (how long
until then, from the moment of sending).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader

from services.notify.domain.preferences import Language

TEMPLATES = Path(__file__).with_name("templates")


@dataclass(frozen=True, slots=True)
class Message:
    subject: str
    body: str


def _span(seconds: float, language: Language) -> str:
    minutes = int(seconds // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if language == "zh-CN":
        parts = [
            f"{days} 天" if days else "",
            f"{hours} 小时" if hours else "",
            f"{minutes} 分钟" if minutes and not days else "",
        ]
        return " ".join(p for p in parts if p) or "不到 1 分钟"
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min" if minutes and not days else ""]
    return " ".join(p for p in parts if p) or "less than a minute"


class Messages:
    def __init__(self, templates: Path = TEMPLATES) -> None:
        self.env = Environment(
            loader=FileSystemLoader(templates),
            autoescape=False,  # plain text for mail bodies and robot markdown, never HTML
            # A parameter a notice lacks (an older notice, a lead notify never saw) renders empty: templates use
            # ``x or "…"`` and ``{% if x %}`` for every optional one.
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def render(
        self, kind: str, params: dict[str, Any], *, reader: str, language: Language, timezone: str, now: datetime
    ) -> Message:
        zone = ZoneInfo(timezone)

        def at(value: str | datetime | None) -> str:
            if value is None:
                return "—"
            moment = datetime.fromisoformat(value) if isinstance(value, str) else value
            return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")

        def left(value: str | datetime) -> str:
            moment = datetime.fromisoformat(value) if isinstance(value, str) else value
            seconds = (moment - now).total_seconds()
            if seconds <= 0:
                return "已到期" if language == "zh-CN" else "none left"
            return _span(seconds, language)

        context = {**params, "reader": reader, "at": at, "left": left, "zone": timezone}
        if kind == "digest":
            context["entries"] = [
                {
                    "subject": self.render(
                        i["kind"], i["params"], reader=reader, language=language, timezone=timezone, now=now
                    ).subject,
                    "at": at(i["event_time"]),
                }
                for i in params["items"]
            ]
        module = self.env.get_template(f"{language}/{kind}.txt").make_module(context)
        return Message(str(getattr(module, "subject", kind)).strip(), str(module).strip())
