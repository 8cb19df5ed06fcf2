"""notify: people and systems hear about what needs them (e-mail, WeCom, DingTalk, Feishu, the console feed, signed webhooks)."""

SERVICE = "notify"
