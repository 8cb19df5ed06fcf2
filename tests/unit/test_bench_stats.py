"""The benchmark's arithmetic: percentiles (also from histograms), rates, ratios, flatness; raw burst requests."""

from __future__ import annotations

import math

import pytest

from bench.burst import request_bytes
from bench.report import number, table
from bench.results import StageResult
from bench.stats import flatness, histogram_quantile, per_event_us, percentile, rate, ratio


def test_percentile_interpolates_between_closest_ranks():
    samples = [40.0, 10.0, 30.0, 20.0]
    assert percentile(samples, 0) == 10.0
    assert percentile(samples, 50) == 25.0
    assert percentile(samples, 100) == 40.0
    assert percentile(list(range(1, 101)), 99) == pytest.approx(99.01)


def test_percentile_of_one_sample_is_that_sample():
    assert percentile([7.5], 99) == 7.5


def test_percentile_refuses_no_samples_and_out_of_range():
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_rate_and_per_event_cost():
    assert rate(5_000, 2.0) == 2_500
    assert per_event_us(1_000, 0.5) == 500
    with pytest.raises(ValueError):
        rate(10, 0)
    with pytest.raises(ValueError):
        per_event_us(0, 1.0)


def test_ratio_is_none_when_a_side_was_not_measured():
    assert ratio(50, 200) == 0.25
    assert ratio(50, None) is None
    assert ratio(None, 200) is None
    assert ratio(50, 0) is None


def test_flatness_is_largest_over_smallest_cost():
    assert flatness([10.0, 11.0, 20.0]) == 2.0
    with pytest.raises(ValueError):
        flatness([10.0])


def test_a_figure_compared_with_a_baseline_of_the_run_carries_its_ratio():
    stage = StageResult("capture")
    figure = stage.compare("accepted", 2_000, "leads/s", "es.save1000_rate", {"es.save1000_rate": 8_000})
    assert (figure.baseline_value, figure.ratio) == (8_000, 0.25)
    missing = stage.compare("published", 1_000, "leads/s", "kafka.produce_consume_rate", {})
    assert missing.ratio is None


def test_the_table_shows_unavailable_stages_and_alerts():
    ok = StageResult("claim")
    ok.add("winners per trial (max)", 2, "winners")
    ok.alert("CLAIM RACE BROKEN")
    missing = StageResult("replay", status="unavailable", reason="not available (service missing: analytics)")
    text = table([ok, missing])
    assert "UNAVAILABLE" in text and "service missing: analytics" in text
    assert "!! claim: CLAIM RACE BROKEN" in text
    assert number(12_345.6) == "12,346" and number(3.14159) == "3.14" and number(None) == "–"


def test_histogram_quantile_interpolates_within_the_bucket_like_prometheus():
    buckets = [(0.005, 50.0), (0.01, 90.0), (0.05, 100.0), (math.inf, 100.0)]
    assert histogram_quantile(buckets, 50) == pytest.approx(0.005)
    assert histogram_quantile(buckets, 70) == pytest.approx(0.0075)
    assert histogram_quantile(buckets, 99) == pytest.approx(0.046)
    assert histogram_quantile(buckets, 25) == pytest.approx(0.0025)


def test_histogram_quantile_beyond_the_last_bound_answers_that_bound_and_refuses_no_samples():
    assert histogram_quantile([(0.01, 1.0), (math.inf, 4.0)], 99) == 0.01
    with pytest.raises(ValueError):
        histogram_quantile([(0.01, 0.0), (math.inf, 0.0)], 50)


def test_burst_requests_are_complete_body_less_http_1_1_requests():
    raw = request_bytes("POST", "http://127.0.0.1:8002/leads/x/claim", {"Authorization": "Bearer t"})
    assert raw == (
        b"POST /leads/x/claim HTTP/1.1\r\nHost: 127.0.0.1:8002\r\nContent-Length: 0\r\nAuthorization: Bearer t\r\n\r\n"
    )
