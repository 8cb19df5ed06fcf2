"""What the console says, in Chinese (the default) and English, and how it shows times.

Every text of the pages is a key here; a refusal from a service is said in words from its problem kind
(and the members the problem carries: a cooldown's end, a limit), never as raw JSON.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")
HTML_LANG = {"zh": "zh-CN", "en": "en"}

# key: (zh, en). Parameters in braces.
MESSAGES: dict[str, tuple[str, str]] = {
    "app.name": ("LeadFlow 工作台", "LeadFlow console"),
    "nav.skip": ("跳到正文", "Skip to content"),
    "nav.today": ("今日", "Today"),
    "nav.my_leads": ("我的线索", "My leads"),
    "nav.pool": ("公海", "Pool"),
    "nav.new_lead": ("新建线索", "New lead"),
    "nav.import": ("导入", "Import"),
    "nav.funnel": ("漏斗", "Funnel"),
    "nav.team": ("团队", "Team"),
    "nav.reports": ("报表", "Reports"),
    "nav.people": ("人员与团队", "People"),
    "nav.sign_out": ("退出登录", "Sign out"),
    "nav.main": ("主导航", "Main navigation"),
    "lang.switch": ("English", "中文"),
    "lang.switch_label": ("切换到英文", "Switch to Chinese"),
    "login.title": ("登录", "Sign in"),
    "login.username": ("用户名", "Username"),
    "login.password": ("密码", "Password"),
    "login.submit": ("登录", "Sign in"),
    "login.wrong": ("用户名或密码错误，请重试。", "Wrong username or password. Please try again."),
    "login.inactive": ("该账号已停用，请联系管理员。", "This account is deactivated. Ask an administrator."),
    "login.throttled": (
        "登录失败次数过多，请在 {minutes} 分钟后再试。",
        "Too many failed sign-ins. Try again in {minutes} minutes.",
    ),
    "login.expired": ("会话已过期，请重新登录。", "Your session has expired. Please sign in again."),
    "login.signed_out": ("你已退出登录。", "You have signed out."),
    "csrf.refused": (
        "请求未通过安全校验（CSRF 令牌无效或已过期），未做任何更改。请刷新页面后重试。",
        "The request failed the security check (missing or stale CSRF token); nothing was changed. Reload the page and try again.",
    ),
    "csrf.title": ("请求被拒绝", "Request refused"),
    "forbidden.page": ("你的角色不能访问此页面。", "Your role may not open this page."),
    "notfound.page": ("找不到该页面。", "There is no such page."),
    "common.none": ("无", "none"),
    "common.submit": ("提交", "Submit"),
    "common.filter": ("筛选", "Filter"),
    "common.all": ("全部", "All"),
    "common.save": ("保存", "Save"),
    "common.cancel": ("取消", "Cancel"),
    "common.back": ("返回", "Back"),
    "common.open": ("打开", "Open"),
    "common.more": ("下一页", "Next page"),
    "common.count": ("数量", "Count"),
    "common.yes": ("是", "yes"),
    "common.no": ("否", "no"),
    "common.done": ("完成", "Done"),
    "common.error": ("出错了", "Something went wrong"),
    "common.unexpected": (
        "发生了意外错误，未做任何更改。请稍后重试。",
        "An unexpected error occurred; nothing was changed. Try again shortly.",
    ),
    "common.in": ("{time}后", "in {time}"),
    "common.ago": ("{time}前", "{time} ago"),
    "common.overdue_by": ("已逾期 {time}", "overdue by {time}"),
    "today.title": ("今日", "Today"),
    "today.greeting": ("你好，{name}", "Hello, {name}"),
    "today.due": ("今日到期与逾期任务", "Tasks due today and overdue"),
    "today.no_tasks": ("今天没有待办任务。", "No tasks due today."),
    "today.warnings": ("即将被收回的线索", "Leads about to be recycled"),
    "today.no_warnings": ("没有即将被收回的线索。", "No lead is about to be recycled."),
    "today.new_assignments": ("新分配给你的线索（24 小时内）", "Assigned to you (last 24 hours)"),
    "today.no_assignments": ("没有新分配的线索。", "No new assignments."),
    "today.count.open_leads": ("未结线索", "Open leads"),
    "today.count.due": ("今日到期", "Due today"),
    "today.count.overdue": ("已逾期", "Overdue"),
    "today.count.warnings": ("即将收回", "About to be recycled"),
    "today.live": ("实时动态", "Live"),
    "today.live_empty": (
        "新的分配、升级和收回提醒会实时出现在这里。",
        "New assignments, escalations and recycle warnings appear here as they happen.",
    ),
    "task.title": ("任务", "Task"),
    "task.due": ("到期", "Due"),
    "task.lead": ("线索", "Lead"),
    "task.status": ("状态", "Status"),
    "task.complete": ("标记完成", "Mark done"),
    "task.completed": ("任务已完成。", "Task done."),
    "leads.title": ("我的线索", "My leads"),
    "leads.none": ("你还没有线索。去公海领取一些吧。", "You own no leads yet. Claim some from the pool."),
    "leads.name": ("客户", "Customer"),
    "leads.company": ("公司", "Company"),
    "leads.stage": ("阶段", "Stage"),
    "leads.grade": ("等级", "Grade"),
    "leads.source": ("来源", "Source"),
    "leads.region": ("地区", "Region"),
    "leads.industry": ("行业", "Industry"),
    "leads.due": ("下次截止", "Next deadline"),
    "leads.captured": ("录入时间", "Captured"),
    "leads.owner": ("负责人", "Owner"),
    "leads.closed": ("已成交 / 已流失", "Won / lost"),
    "pool.title": ("公海", "Public pool"),
    "pool.empty": ("公海里没有符合条件的线索。", "No lead in the pool matches."),
    "pool.claim": ("领取", "Claim"),
    "pool.claimed": ("已领取这条线索，保护期至 {until}。", "You claimed this lead; it is protected until {until}."),
    "lead.title": ("线索详情", "Lead"),
    "lead.profile": ("客户资料", "Profile"),
    "lead.phone": ("电话", "Phone"),
    "lead.email": ("邮箱", "E-mail"),
    "lead.wechat": ("微信", "WeChat"),
    "lead.title_field": ("职位", "Title"),
    "lead.needs": ("需求", "Needs"),
    "lead.score": ("评分", "Score"),
    "lead.score_why": ("评分依据", "Why this score"),
    "lead.owner_none": ("在公海中（无人负责）", "In the pool (nobody owns it)"),
    "lead.protected_until": ("保护期至 {until}（{left}）", "Protected until {until} ({left})"),
    "lead.due": ("若不跟进，将于 {at} 收回（{left}）", "Recycled at {at} unless followed up ({left})"),
    "lead.cooldown": ("你可在 {until} 之后再次领取。", "You may claim it again after {until}."),
    "lead.timeline": ("时间线", "Timeline"),
    "lead.timeline_empty": ("暂无记录。", "Nothing yet."),
    "lead.open_tasks": ("待办任务", "Open tasks"),
    "lead.no_tasks": ("暂无待办任务。", "No open tasks."),
    "lead.log": ("记录跟进", "Log a follow-up"),
    "lead.channel": ("方式", "Channel"),
    "lead.summary": ("沟通摘要", "Summary"),
    "lead.pain_points": ("痛点", "Pain points"),
    "lead.objections": ("异议", "Objections"),
    "lead.next_step": ("下一步", "Next step"),
    "lead.next_at": ("下次联系时间", "Next contact"),
    "lead.stage_after": ("跟进后阶段", "Stage after this contact"),
    "lead.stage_keep": ("保持不变", "Unchanged"),
    "lead.won_amount": ("成交金额（仅成交时）", "Amount won (only when won)"),
    "lead.lost_reason": ("流失原因（仅流失时）", "Why lost (only when lost)"),
    "lead.logged": ("跟进已记录，阶段：{stage}。", "Follow-up logged; stage: {stage}."),
    "lead.claim": ("领取这条线索", "Claim this lead"),
    "lead.release": ("释放到公海", "Release to the pool"),
    "lead.released": (
        "已释放到公海。你可在 {until} 之后再次领取。",
        "Released to the pool. You may claim it again after {until}.",
    ),
    "lead.release_confirm": ("确定把这条线索释放到公海吗？", "Release this lead to the pool?"),
    "lead.how": ("获得方式", "How"),
    "lead.ownership_history": ("归属记录", "Ownership"),
    "lead.first_response": ("首次响应：{time}", "First response: {time}"),
    "lead.outcome_won": ("已成交", "Won"),
    "lead.outcome_lost": ("已流失：{reason}", "Lost: {reason}"),
    "lead.stage_history": ("阶段变化", "Stage changes"),
    "event.captured": ("{by} 录入，来源 {source}", "Captured by {by} from {source}"),
    "event.claimed": ("{rep} 获得（{how}）", "{rep} took it ({how})"),
    "event.released": ("从 {rep} 收回：{reason}", "Released from {rep}: {reason}"),
    "event.follow_up": ("{rep} 通过{channel}跟进：{summary}", "{rep} by {channel}: {summary}"),
    "event.stage": ("阶段 → {stage}", "Stage → {stage}"),
    "event.won": ("成交", "Won"),
    "event.lost": ("流失", "Lost"),
    "new.title": ("新建线索", "New lead"),
    "new.name": ("客户姓名", "Customer name"),
    "new.phone": ("手机号", "Phone"),
    "new.source": ("来源", "Source"),
    "new.claim": ("报备给我自己（录入后直接归我）", "Report it for myself (I own it at once)"),
    "new.created": ("线索已录入（评分 {score}，等级 {grade}）。", "Lead captured (score {score}, grade {grade})."),
    "new.dup_yours": ("查重：该客户已存在，是你的线索。", "Duplicate: this customer exists and is your lead."),
    "new.dup_colleague": ("查重：该客户已存在，由同事负责。", "Duplicate: this customer exists and a colleague owns it."),
    "new.dup_pool": (
        "查重：该客户已存在，在公海中，可以领取。",
        "Duplicate: this customer exists and is in the pool; you may claim it.",
    ),
    "new.dup_exists": ("查重：该客户已存在。", "Duplicate: this customer exists."),
    "new.open_existing": ("打开已有线索", "Open the existing lead"),
    "import.title": ("导入线索（CSV）", "Import leads (CSV)"),
    "import.file": ("CSV 文件（UTF-8 或 GB18030，表头可用中文）", "CSV file (UTF-8 or GB18030; Chinese headers accepted)"),
    "import.submit": ("上传并导入", "Upload and import"),
    "import.result": (
        "共 {rows} 行：新建 {created}，重复 {duplicates}，无效 {invalid}。",
        "{rows} rows: {created} created, {duplicates} duplicates, {invalid} invalid.",
    ),
    "import.row": ("第 {row} 行", "Row {row}"),
    "import.row_header": ("行", "Row"),
    "import.errors_header": ("错误", "Errors"),
    "import.progress": ("正在上传并导入…", "Uploading and importing…"),
    "import.no_file": ("请选择一个 CSV 文件。", "Choose a CSV file."),
    "funnel.title": ("销售漏斗", "Sales funnel"),
    "funnel.from": ("开始日期", "From"),
    "funnel.to": ("结束日期", "To"),
    "funnel.group_by": ("分组", "Group by"),
    "funnel.group.none": ("不分组", "No grouping"),
    "funnel.group.source": ("来源", "Source"),
    "funnel.group.rep": ("销售", "Rep"),
    "funnel.group.region": ("地区", "Region"),
    "funnel.group.industry": ("行业", "Industry"),
    "funnel.group": ("分组", "Group"),
    "funnel.leads": ("线索数", "Leads"),
    "funnel.reached": ("到达", "Reached"),
    "funnel.conversion": ("较上一阶段转化", "Conversion from previous"),
    "funnel.won": ("成交", "Won"),
    "funnel.win_rate": ("赢单率", "Win rate"),
    "funnel.chart": (
        "各阶段到达的线索数（柱状图），表格见下方",
        "Leads reaching each stage (bar chart); the table below has the figures",
    ),
    "funnel.empty": ("该时间段没有线索。", "No leads in this range."),
    "reports.title": ("报表", "Reports"),
    "reports.response": ("响应时间（录入 → 首次跟进）", "Response time (capture → first follow-up)"),
    "reports.leaderboard": ("排行榜", "Leaderboard"),
    "reports.responded": ("已响应", "Responded"),
    "reports.follow_ups": ("跟进次数", "Follow-ups"),
    "reports.on_time": ("按时完成", "On time"),
    "reports.leads_owned": ("负责线索", "Leads owned"),
    "reports.rank": ("排名", "Rank"),
    "team.title": ("我的团队", "My team"),
    "team.rep": ("销售", "Rep"),
    "team.open_leads": ("未结线索", "Open leads"),
    "team.overdue": ("逾期任务", "Overdue tasks"),
    "team.escalated": ("升级给我的逾期任务", "Overdue tasks escalated to me"),
    "team.no_escalations": ("没有升级的任务。", "No escalated tasks."),
    "team.none": ("你的团队还没有成员。", "Your team has no members yet."),
    "team.view_leads": ("查看线索", "View leads"),
    "team.reassign": ("改派", "Reassign"),
    "team.reassign_to": ("改派给", "Reassign to"),
    "team.reassigned": ("线索已改派给 {rep}。", "Lead reassigned to {rep}."),
    "team.offboard": ("办理离职", "Offboard"),
    "team.offboard_title": ("为 {rep} 办理离职", "Offboard {rep}"),
    "team.offboard_to": ("线索转给", "Move the leads to"),
    "team.offboard_pool": ("退回公海", "Back to the pool"),
    "team.offboard_confirm": (
        "{rep} 名下 {count} 条未结线索将转给 {target}，账号将被停用。确认吗？",
        "{count} open leads of {rep} will move to {target}, and the account will be deactivated. Confirm?",
    ),
    "team.offboard_customers": ("已成交和已流失的客户也一并转给接替的人。", "Won and lost customers go to the successor too."),
    "team.offboard_go": ("确认离职并转移线索", "Confirm: offboard and move the leads"),
    "team.offboarded": ("{rep} 已离职，{count} 条线索已转给 {target}。", "{rep} is offboarded; {count} leads moved to {target}."),
    "team.leads_of": ("{rep} 的线索", "Leads of {rep}"),
    "people.title": ("人员与团队", "People and teams"),
    "people.add": ("新增人员", "Add a person"),
    "people.username": ("用户名", "Username"),
    "people.display_name": ("姓名", "Name"),
    "people.role": ("角色", "Role"),
    "people.team": ("团队", "Team"),
    "people.manager": ("上级", "Manager"),
    "people.email": ("邮箱", "E-mail"),
    "people.phone": ("手机（接收通知）", "Phone (notifications)"),
    "people.password": ("初始密码（至少 8 位）", "Initial password (8+ characters)"),
    "people.active": ("在职", "Active"),
    "people.deactivate": ("停用", "Deactivate"),
    "people.reactivate": ("启用", "Reactivate"),
    "people.move": ("调整团队", "Move"),
    "people.added": ("已新增 {username}。", "Added {username}."),
    "people.deactivated": ("已停用 {username}。", "Deactivated {username}."),
    "people.reactivated": ("已启用 {username}。", "Reactivated {username}."),
    "people.moved": ("{username} 已调整到团队 {team}。", "{username} moved to team {team}."),
    "people.actions": ("操作", "Actions"),
    "role.rep": ("销售", "rep"),
    "role.manager": ("经理", "manager"),
    "role.admin": ("管理员", "admin"),
    # refusals, by problem kind
    "refused.reclaim-cooldown": (
        "你释放过这条线索，可在 {until} 之后再次领取。",
        "You released this lead; you may claim it again after {until}.",
    ),
    "refused.claim-limit-reached": ("你已拥有 {limit} 条未结线索，已达上限。", "You own {limit} open leads, the limit."),
    "refused.claim-limit-reached.other": (
        "对方已拥有 {limit} 条未结线索，已达上限。",
        "That rep owns {limit} open leads, the limit.",
    ),
    "refused.lead-already-owned": ("这条线索已被同事领取。", "A colleague already owns this lead."),
    "refused.lead-closed": (
        "这条线索已成交或已流失，不能再领取或释放。",
        "This lead is won or lost; it can no longer be claimed or released.",
    ),
    "refused.rep-offboarded": ("该销售已离职，不能领取或分配线索。", "That rep is offboarded and cannot take leads."),
    "refused.rep-unknown": ("目录中没有该销售。", "The directory has no such rep."),
    "refused.rep-inactive": ("该销售已停用，不能分配线索。", "That rep is deactivated and cannot take leads."),
    "refused.lead-not-owned": ("这条线索在公海中，无人负责。", "This lead is in the pool; nobody owns it."),
    "refused.not-lead-owner": ("这条线索不属于你。", "This lead is not yours."),
    "refused.not-owner": ("只有负责人（或经理）可以跟进这条线索。", "Only the owner (or a manager) may work this lead."),
    "refused.not-your-leads": ("你只能查看自己的线索。", "You may see only your own leads."),
    "refused.not-own-tasks": ("你只能处理自己的任务。", "You may handle only your own tasks."),
    "refused.lead-not-found": (
        "找不到这条线索（刚录入的线索需要片刻才能出现，请稍后再试）。",
        "No such lead (a lead just captured takes a moment to show; try again shortly).",
    ),
    "refused.not-yet-seen": (
        "系统还在处理这条线索，请几秒后重试。",
        "The system is still catching up on this lead; try again in a few seconds.",
    ),
    "refused.lead-not-yet-known": ("这条线索当时还不存在。", "The lead did not exist yet at that moment."),
    "refused.task-not-found": ("找不到该任务。", "No such task."),
    "refused.task-not-open": ("该任务已取消，不能完成。", "This task was cancelled and cannot be completed."),
    "refused.stage-move-forbidden": ("阶段不能这样变更：{detail}", "The stage cannot move like that: {detail}"),
    "refused.validation-error": ("输入有误：{detail}", "Please check the input: {detail}"),
    "refused.duplicate-lead": ("该客户已存在。", "This customer exists already."),
    "refused.forbidden-role": ("你的角色不能执行此操作。", "Your role may not do this."),
    "refused.claim-not-allowed": ("只有销售可以报备给自己。", "Only reps may report a lead for themselves."),
    "refused.contended": ("同时有其他操作，请重试。", "Someone else was changing this at the same moment; try again."),
    "refused.contention": ("同时有其他操作，请重试。", "Someone else was changing this at the same moment; try again."),
    "refused.service-unavailable": (
        "服务暂时不可用，未做任何更改，请稍后重试。",
        "A service is unavailable right now; nothing was changed. Try again shortly.",
    ),
    "refused.not-ready": (
        "服务暂时不可用，未做任何更改，请稍后重试。",
        "A service is unavailable right now; nothing was changed. Try again shortly.",
    ),
    "refused.unauthorized": ("身份校验失败，请重新登录。", "Your identity could not be verified; sign in again."),
    "refused.content-too-large": ("文件太大。", "The file is too large."),
    "refused.unsupported-media-type": (
        "无法识别文件编码，请用 UTF-8 或 GB18030。",
        "Unknown file encoding; use UTF-8 or GB18030.",
    ),
    "refused.other": ("操作被拒绝（{kind}）：{detail}", "Refused ({kind}): {detail}"),
    "directory.username-taken": ("用户名 {username} 已被使用。", "The username {username} is taken."),
    "directory.unknown-user": ("没有用户 {username}。", "No user {username}."),
    "directory.not-a-manager": ("{username} 不是在职的经理或管理员。", "{username} is not an active manager or admin."),
    "directory.self": ("不能停用你自己的账号。", "You cannot deactivate your own account."),
    "directory.invalid": ("{field}：{message}", "{field}: {message}"),
}

LABELS: dict[str, dict[str, tuple[str, str]]] = {
    "stage": {
        "new": ("新线索", "new"),
        "assigned": ("已分配", "assigned"),
        "contacted": ("已联系", "contacted"),
        "qualified": ("需求确认", "qualified"),
        "quoted": ("已报价", "quoted"),
        "negotiating": ("谈判中", "negotiating"),
        "won": ("已成交", "won"),
        "lost": ("已流失", "lost"),
    },
    "channel": {
        "phone": ("电话", "phone"),
        "email": ("邮件", "e-mail"),
        "wechat": ("微信", "WeChat"),
        "visit": ("拜访", "visit"),
        "meeting": ("会议", "meeting"),
        "other": ("其他", "other"),
    },
    "how": {
        "report": ("报备", "reported"),
        "claim": ("领取", "claimed"),
        "assign": ("分配", "assigned"),
        "auto": ("自动分配", "auto"),
    },
    "reason": {
        "manual": ("手动释放", "released by hand"),
        "no_first_contact": ("未及时首次联系", "no first contact in time"),
        "no_follow_up": ("长期未跟进", "no follow-up in time"),
        "protection_expired": ("保护期到期", "protection expired"),
        "reassigned": ("被改派", "reassigned"),
        "rep_offboarded": ("销售离职", "rep offboarded"),
    },
    "task": {
        "first_contact": ("首次联系", "first contact"),
        "cadence": ("例行跟进", "regular follow-up"),
        "agreed_follow_up": ("约定回访", "agreed follow-up"),
        "recycle_warning": ("即将收回", "about to be recycled"),
    },
    "status": {
        "open": ("待办", "open"),
        "overdue": ("已逾期", "overdue"),
        "done": ("已完成", "done"),
        "cancelled": ("已取消", "cancelled"),
    },
}


def pick_lang(value: str | None) -> Lang:
    return "en" if value == "en" else "zh"


def zone(name: str | None, default: str) -> ZoneInfo:
    for candidate in (name, default, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


class Translator:
    def __init__(self, lang: Lang, tz: ZoneInfo) -> None:
        self.lang = lang
        self.tz = tz
        self._index = LANGS.index(lang)

    def __call__(self, key: str, **params: Any) -> str:
        texts = MESSAGES.get(key)
        if texts is None:
            return key
        text = texts[self._index]
        return text.format(**params) if params else text

    def label(self, kind: str, value: str | None) -> str:
        if value is None:
            return "—"
        texts = LABELS.get(kind, {}).get(value)
        return texts[self._index] if texts else value

    def time(self, value: datetime | str | None) -> str:
        """A moment in the person's time zone, to the minute."""
        moment = parse_time(value)
        if moment is None:
            return "—"
        return moment.astimezone(self.tz).strftime("%Y-%m-%d %H:%M")

    def local_input(self, value: datetime | None) -> str:
        """For an ``<input type=datetime-local>``."""
        return value.astimezone(self.tz).strftime("%Y-%m-%dT%H:%M") if value else ""

    def span(self, seconds: float) -> str:
        seconds = abs(seconds)
        days, rest = divmod(int(seconds), 86400)
        hours, rest = divmod(rest, 3600)
        minutes = rest // 60
        zh = self.lang == "zh"
        if days:
            return f"{days} 天 {hours} 小时" if zh else f"{days} d {hours} h"
        if hours:
            return f"{hours} 小时 {minutes} 分" if zh else f"{hours} h {minutes} min"
        return f"{max(minutes, 1)} 分钟" if zh else f"{max(minutes, 1)} min"

    def relative(self, value: datetime | str | None, now: datetime) -> str:
        """How long until (or since) a moment: "in 3 h 5 min" / "overdue by 2 d 1 h"."""
        moment = parse_time(value)
        if moment is None:
            return "—"
        delta = (moment - now).total_seconds()
        return self("common.in", time=self.span(delta)) if delta >= 0 else self("common.overdue_by", time=self.span(delta))

    def refusal(self, kind: str, detail: str = "", body: dict[str, Any] | None = None, *, for_other: bool = False) -> str:
        body = body or {}
        if kind == "reclaim-cooldown":
            return self("refused.reclaim-cooldown", until=self.time(body.get("cooldown_until")))
        if kind == "claim-limit-reached":
            key = "refused.claim-limit-reached.other" if for_other else "refused.claim-limit-reached"
            return self(key, limit=body.get("limit", "?"))
        if kind == "validation-error":
            errors = body.get("errors") or []
            said = "；".join(f"{e.get('field')}: {e.get('message')}" for e in errors) if errors else detail
            return self("refused.validation-error", detail=said)
        if kind == "stage-move-forbidden":
            return self("refused.stage-move-forbidden", detail=detail)
        if f"refused.{kind}" in MESSAGES:
            return self(f"refused.{kind}")
        return self("refused.other", kind=kind, detail=detail)


def parse_time(value: datetime | str | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


DAY = timedelta(days=1)
