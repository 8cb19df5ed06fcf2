"""Reading lead CSV files as streams: encodings, headers, quoting, broken rows, chunk boundaries."""

import csv
import uuid
from datetime import UTC, datetime

import pytest

from services.intake.app import Captured
from services.intake.csv_rows import MAX_LINE, CsvLeadReader, InvalidCsv, decode, lines
from services.intake.imports import import_csv

BOM = b"\xef\xbb\xbf"
MESSY = (
    "姓名,手机,公司,职位,来源,标签,备注列X\r\n"
    '张三,138 0013 8000,甲公司,"采购\r\n总监",展会,"VIP,重点",x\r\n'
    "\r\n"
    "李四,,乙公司,,,,\r\n"
    "王五,+86 139-0013-9000,丙,,,,,多出来的\r\n"
)


def in_pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def read(data: bytes, chunk: int = 64 * 1024, charset: str | None = None):
    reader = CsvLeadReader(in_pieces(data, chunk), charset)
    return reader, list(reader)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1024])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-bom", "gb18030"])
def test_the_same_rows_come_out_whatever_the_encoding_and_chunking(encoding, chunk):
    data = BOM + MESSY.encode() if encoding == "utf-8-bom" else MESSY.encode(encoding)
    reader, rows = read(data, chunk)
    assert reader.ignored_columns == ["备注列X"]
    assert [row.number for row in rows] == [2, 4, 5]  # the blank record 3 is skipped but counted
    first = rows[0]
    assert first.values == {
        "name": "张三",
        "phone": "138 0013 8000",
        "company": "甲公司",
        "title": "采购\r\n总监",
        "source": "展会",
        "tags": ["VIP", "重点"],
    }
    assert rows[1].values == {"name": "李四", "company": "乙公司"} and rows[1].errors == []
    assert rows[2].errors == [{"field": "row", "message": "8 cells but the header has 7"}]


def test_english_headers_in_any_case_with_notes_and_the_first_of_two_phone_columns():
    header = "Full Name,Mobile,Phone (office),E-mail*,WeChat,Company Size,Needs\n"
    _, rows = read((header + "Ann,13800138000,010 6552 9988,a@b.cn,wx_ann,500+,CRM\n").encode())
    assert rows[0].values == {
        "name": "Ann",
        "phone": "13800138000",
        "email": "a@b.cn",
        "wechat": "wx_ann",
        "company_size": "500+",
        "needs": "CRM",
    }


def test_a_header_without_name_or_phone_refuses_the_file():
    with pytest.raises(InvalidCsv) as caught:
        CsvLeadReader([b"company,email\nx,y\n"])
    assert [e["field"] for e in caught.value.errors] == ["header", "header"]
    with pytest.raises(InvalidCsv):
        CsvLeadReader([b"", b"\n\n"])


def test_a_declared_charset_wins():
    data = "姓名,手机\n张三,13800138000\n".encode("gb18030")
    _, rows = read(data, charset="gb18030")
    assert rows[0].values["name"] == "张三"


def test_bytes_that_are_not_utf8_after_real_utf8_mark_only_their_row():
    data = "姓名,手机\n张三,13800138000\n".encode() + b"\xff\xfe,13900139000\n" + "李四,13700137000\n".encode()
    _, rows = read(data, chunk=5)
    assert [r.values.get("name") for r in rows] == ["张三", "\ufffd\ufffd", "李四"]
    assert rows[1].errors[0]["field"] == "name" and rows[0].errors == rows[2].errors == []


def test_ascii_then_gb18030_switches_without_losing_what_came_before():
    data = b"name,phone\n" + b"Ann,13800138000\n" * 100 + "张三,13900139000\n".encode("gb18030")
    text = "".join(decode(in_pieces(data, 64)))
    assert text.endswith("张三,13900139000\n") and text.count("Ann") == 100


def test_lines_split_only_on_real_line_ends_even_across_chunks():
    assert list(lines(["a\r", "\nb\u2028c\n", "d"])) == ["a\r\n", "b\u2028c\n", "d"]


def test_an_unterminated_quote_or_endless_line_is_bounded_and_reported_not_fatal():
    data = b'name,phone\nAnn,13800138000\n"Bob,13900139000\n' + b"x" * (csv.field_size_limit() + 10) + b"\n"
    _, rows = read(data, chunk=4096)
    assert rows[0].values["name"] == "Ann"
    assert rows[-1].errors and rows[-1].errors[0]["field"] == "row"
    endless = list(lines(["x" * 64 * 1024] * (3 * MAX_LINE // (64 * 1024))))
    assert max(map(len, endless)) <= MAX_LINE + 64 * 1024 and sum(map(len, endless)) == 3 * MAX_LINE


class RecordingApp:
    """Stands in for IntakeApplication: keeps what an import would record."""

    def __init__(self) -> None:
        self.recorded: list = []

    def capture_many(self, leads, *, now, correlation_id=None):
        self.recorded.extend(leads)
        return [Captured(uuid.uuid4(), 0, "C", []) for _ in leads]


def test_a_cell_whose_text_is_refused_makes_its_row_invalid_naming_the_column_and_nothing_of_it_is_recorded():
    data = (
        "姓名,手机,公司,职位,需求,标签\r\n"
        '张三,\t13800138000 ,甲公司,采购总监,"一期 MES\n二期 WMS",VIP\r\n'  # padding around a cell is layout
        "李\x00四,13900139000,乙公司,,,\r\n"
        "王五,13700137000,\u202e司公丙,,,\r\n"
        '赵六,13600136000,丁公司,"采购\n总监",,\r\n'  # a line break inside a single-line column
        "钱七,13500135000,戊公司,,,\x1b[31mVIP\r\n"
        "孙八,13400134000,己公司,,需求\x85,\r\n"
    ).encode()
    app = RecordingApp()
    report = import_csv(
        app,
        CsvLeadReader([data]),
        default_region="CN",
        captured_by="ops",
        role="manager",
        clock=lambda: datetime.now(UTC),
        chunk_rows=100,
    )
    assert [(row["row"], [e["field"] for e in row["errors"]]) for row in report.invalid] == [
        (3, ["name"]),
        (4, ["company"]),
        (5, ["title"]),
        (6, ["tags.0"]),
        (7, ["needs"]),
    ]
    assert "U+0000" in report.invalid[0]["errors"][0]["message"]
    assert report.created == 1 and [lead.name for lead in app.recorded] == ["张三"]
    assert app.recorded[0].phone == "+8613800138000"
