"""Reading lead spreadsheets exported as CSV, as a stream: bytes in, one :class:`CsvRow` at a time out.

Handles what arrives in practice: UTF-8 with or without BOM, GB18030 (Excel in China), Chinese or English
headers, quoted cells with line breaks, ragged and broken rows. Memory stays bounded by one chunk plus one
record (a cell is limited by ``csv.field_size_limit``). No I/O of its own: it reads the iterable it is given.
"""

from __future__ import annotations

import codecs
import csv
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

UTF8_BOM = codecs.BOM_UTF8
REPLACEMENT = "\ufffd"

# Header spellings (after folding: NFKC, lower case, no spaces/_/-/*/colons/bracketed notes) → lead field.
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("姓名", "名字", "客户姓名", "联系人", "联系人姓名", "name", "fullname", "contact", "contactname"),
    "phone": (
        "手机",
        "手机号",
        "手机号码",
        "电话",
        "电话号码",
        "联系电话",
        "联系方式",
        "phone",
        "phonenumber",
        "mobile",
        "tel",
        "telephone",
        "cell",
    ),
    "company": ("公司", "公司名称", "单位", "企业", "企业名称", "company", "companyname", "organization", "organisation"),
    "industry": ("行业", "所属行业", "industry"),
    "region": ("地区", "区域", "地域", "省份", "城市", "所在地", "region", "city", "province", "area", "location"),
    "source": ("来源", "线索来源", "渠道", "source", "channel", "leadsource"),
    "title": ("职位", "职务", "头衔", "title", "jobtitle", "position"),
    "email": ("邮箱", "电子邮箱", "邮件", "email", "mail"),
    "wechat": ("微信", "微信号", "wechat", "weixin", "wx"),
    "needs": ("需求", "客户需求", "备注", "needs", "need", "requirement", "requirements", "notes", "note", "remark", "remarks"),
    "company_size": ("规模", "公司规模", "企业规模", "人数", "员工人数", "companysize", "size", "employees", "headcount"),
    "tags": ("标签", "tags", "tag"),
}
_FIELD_OF_HEADER = {alias: name for name, aliases in HEADER_ALIASES.items() for alias in aliases}
_HEADER_NOISE = re.compile(r"\(.*?\)|（.*?）|\[.*?\]|【.*?】|[\s_\-*:：]")
_TAG_SEPARATORS = re.compile(r"[,;，；、|]")
_LINE_END = re.compile(r"\r\n|\r|\n")
MAX_LINE = 1024 * 1024
# Spreadsheets pad cells, and exports put a tab before long numbers so that Excel keeps them as text (a
# phone would become 1.38E+10): layout, not content, so it is dropped before the cell is checked as text.
CELL_PADDING = " \t\r\n"


class InvalidCsv(ValueError):
    """The file as a whole cannot be imported (no header, no phone column, …); nothing was recorded."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(e["message"] for e in errors))
        self.errors = errors


@dataclass(frozen=True)
class CsvRow:
    """One data row. ``number`` counts records as a spreadsheet shows them: the header is row 1."""

    number: int
    values: dict[str, str | list[str]] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)


def fold_header(cell: str) -> str:
    return _HEADER_NOISE.sub("", unicodedata.normalize("NFKC", cell).lower()).lstrip("\ufeff")


def decode(chunks: Iterable[bytes], charset: str | None = None) -> Iterator[str]:
    """Bytes → text. A declared charset wins; a UTF-8 BOM means UTF-8 (the BOM is dropped). Otherwise UTF-8,
    unless a byte that is not UTF-8 comes while nothing but ASCII came before it: then GB18030 (ASCII reads
    the same in both). Bytes that fit the chosen charset nowhere become U+FFFD, so the rows holding them are
    reported instead of failing the whole file."""
    decoder: codecs.IncrementalDecoder | None = None
    if charset is not None:
        decoder = codecs.getincrementaldecoder(charset)(errors="replace")
    sniffer = codecs.getincrementaldecoder("utf-8")(errors="strict")
    first = True
    for chunk in chunks:
        if first and chunk:
            first = False
            if chunk.startswith(UTF8_BOM) and (charset is None or codecs.lookup(charset).name.startswith("utf-8")):
                chunk = chunk[len(UTF8_BOM) :]
                decoder = decoder or codecs.getincrementaldecoder("utf-8")(errors="replace")
        if decoder is not None:
            text = decoder.decode(chunk)
        else:
            pending = sniffer.getstate()[0]
            try:
                text = sniffer.decode(chunk)
            except UnicodeDecodeError as exc:
                data = pending + chunk
                decoder = codecs.getincrementaldecoder("gb18030" if data[: exc.start].isascii() else "utf-8")(errors="replace")
                text = decoder.decode(data)
            else:
                if not text.isascii():  # real UTF-8: keep it, and from now on replace what is not UTF-8
                    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
                    decoder.setstate(sniffer.getstate())
        if text:
            yield text
    tail = decoder.decode(b"", final=True) if decoder is not None else _final(sniffer)
    if tail:
        yield tail


def _final(sniffer: codecs.IncrementalDecoder) -> str:
    """The last bytes of a file that was ASCII until its very end."""
    pending = sniffer.getstate()[0]
    try:
        return sniffer.decode(b"", final=True)
    except UnicodeDecodeError:
        return pending.decode("gb18030", errors="replace")


def lines(texts: Iterable[str]) -> Iterator[str]:
    """Text chunks → lines with their endings, splitting only on \r\n, \r and \n (as csv expects).

    A line longer than ``MAX_LINE`` characters is passed on in pieces, so memory stays bounded; the csv
    reader then reports the oversized record (``csv.field_size_limit``) instead of the import running out.
    """
    buffer = ""
    for text in texts:
        buffer += text
        start = 0
        while (match := _LINE_END.search(buffer, start)) is not None:
            if match.group() == "\r" and match.end() == len(buffer):
                break  # maybe the first half of a \r\n split across chunks
            yield buffer[start : match.end()]
            start = match.end()
        buffer = buffer[start:]
        if len(buffer) > MAX_LINE:
            yield buffer
            buffer = ""
    if buffer:
        yield buffer


class CsvLeadReader:
    """``for row in CsvLeadReader(chunks)``: the header is read (and checked) on construction."""

    def __init__(self, chunks: Iterable[bytes], charset: str | None = None) -> None:
        self._records = csv.reader(lines(decode(chunks, charset)))
        header = self._next_header()
        self.columns: list[str | None] = []
        self.ignored_columns: list[str] = []
        for cell in header:
            name = _FIELD_OF_HEADER.get(fold_header(cell))
            self.columns.append(name)
            if name is None and cell.strip():
                self.ignored_columns.append(cell.strip().lstrip("\ufeff"))
        missing = [name for name in ("name", "phone") if name not in self.columns]
        if missing:
            raise InvalidCsv(
                [
                    {"field": "header", "message": f"no {name} column (expected one of: {', '.join(HEADER_ALIASES[name])})"}
                    for name in missing
                ]
            )
        self._number = 1

    def _next_header(self) -> list[str]:
        try:
            for record in self._records:
                if any(cell.strip() for cell in record):
                    return record
        except csv.Error as exc:
            raise InvalidCsv([{"field": "header", "message": f"the header row cannot be read: {exc}"}]) from None
        raise InvalidCsv([{"field": "header", "message": "the file has no header row"}])

    def __iter__(self) -> Iterator[CsvRow]:
        while True:
            self._number += 1
            try:
                record = next(self._records)
            except StopIteration:
                return
            except csv.Error as exc:
                yield CsvRow(self._number, errors=[{"field": "row", "message": f"not readable as CSV: {exc}"}])
                continue
            if any(cell.strip() for cell in record):
                yield self._row(record)

    def _row(self, record: list[str]) -> CsvRow:
        values: dict[str, str | list[str]] = {}
        errors: list[dict[str, str]] = []
        for index, padded in enumerate(record):
            cell = padded.strip(CELL_PADDING)
            name = self.columns[index] if index < len(self.columns) else None
            if index >= len(self.columns) and cell.strip():
                errors.append({"field": "row", "message": f"{len(record)} cells but the header has {len(self.columns)}"})
                break
            if name is None or not cell.strip() or name in values:
                continue
            if REPLACEMENT in cell:
                errors.append({"field": name, "message": "contains bytes that are not valid text in the file's encoding"})
            values[name] = [t for t in _TAG_SEPARATORS.split(cell)] if name == "tags" else cell
        return CsvRow(self._number, values, errors)
